"""The alias history's index: what `history()` and `version_at()` need, in a few S3 objects
however long the history grows, instead of one GET per move.

    models/<name>/index/history/head.json     rewritten with every move, under the index lease:
        the watermark (the last history object it has read), every alias ever moved (with the
        pointer move already folded in), the newest moves (the tail) and a summary of the archive
    models/<name>/index/history/archive.json.gz  every older move (gzipped JSON); rewritten
        (then the head) each time the tail reaches `seal_at` moves, so the head a move rewrites
        stays small
(their documents, and the pure steps that change them, are in history_head.py).

The history objects and the alias pointers stay the truth; the index is a cache that a reader
checks against them at a fixed cost. Moves of every alias fold themselves in under one lease,
after their pointer and history object are written. A writer that dies before folding its move
in leaves it where a reader still looks: its history object after the watermark (a reader lists
`history/` after it and reads those few), or, if it died before that object or its clock is
behind the last writer's, its alias pointer (a reader reads the pointers of the aliases the head
names; a new alias is named in the head before its first pointer exists). The next move of that
alias folds its pointer's move in first, so of the moves set_alias made only each alias's latest
can be missing, and its pointer holds it. A missing or unreadable index: the reader reads every history object as
before the index, and writes the index anew if it can.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from tasks.registry.history_head import Archive, HistoryHead, fold, seal
from tasks.registry.leases import LeaseBusy
from tasks.registry.moves import AliasMove, Entry, in_order
from tasks.s3 import ObjectNotFound, ObjectStore, S3AccessDenied, S3Unavailable

LOG = logging.getLogger(__name__)
SEAL_AT = 128  # tail moves kept in the head: a move rewrites ~35 KB, not the whole history
INDEX_LEASE = "history-index"
Doc = TypeVar("Doc", bound=BaseModel)


class Lock(Protocol):
    def __call__(self, what: str, wait_s: float = ...) -> AbstractContextManager[str]: ...


@dataclass(frozen=True)
class View:
    """The index as a reader found it, and the moves written after its watermark."""

    head: HistoryHead
    archive: list[Entry] | None  # None: not read (the head's summary may be enough)
    fresh: list[Entry]
    rebuilt: bool = False  # head and archive came from reading every history object


@dataclass
class Draft:
    """The head being changed under the index lease; saved when its holder is done."""

    head: HistoryHead
    saved: HistoryHead | None = None  # what S3 holds now (None: nothing readable)


class HistoryIndex:
    """Reads and maintains the index of one model's alias history."""

    def __init__(self, store: ObjectStore, prefix: str, lock: Lock, seal_at: int = SEAL_AT):
        self.store, self.lock, self.seal_at = store, lock, seal_at
        self.history, self.pointers = f"{prefix}history/", f"{prefix}aliases/"
        self.head_key = f"{prefix}index/history/head.json"
        self.archive_key = f"{prefix}index/history/archive.json.gz"

    # -- reading ------------------------------------------------------------------------------
    def view(self, archive: bool) -> View:
        """The index and what came after it; rebuilt from the history itself if it is lost."""
        head = self._load(self.head_key, HistoryHead)
        archived = self.archived(head) if head is not None and archive else None
        if head is None or (archive and archived is None):
            return self._rebuilt()
        view = View(head, archived, self.read_after(head.watermark))
        if view.fresh:
            self.repair(view)
        return view

    def archived(self, head: HistoryHead) -> list[Entry] | None:
        """The archive's moves ([] when there is none yet); None if it is missing or unreadable."""
        if head.archive is None:
            return []
        archive = self._load(self.archive_key, Archive)
        return None if archive is None else archive.entries

    def archived_candidates(self, head: HistoryHead, alias: str, when: datetime) -> list[Entry]:
        """The archived moves that may be in force at `when`: the summary's when it is past the
        archive, the whole archive only when `when` falls inside it."""
        summary = head.archive
        if summary is None or summary.min_at > when:
            return []
        if summary.max_at <= when:
            return [summary.last[alias]] if alias in summary.last else []
        archived = self.archived(head)
        return self.scan() if archived is None else archived

    def read_after(self, watermark: str) -> list[Entry]:
        """The history objects after the watermark, one GET each (normally none)."""
        start = self.history + watermark if watermark else None
        keys = list(self.store.list_keys(self.history, start_after=start))
        return [entry for key in keys if (entry := self._entry(key)) is not None]

    def scan(self) -> list[Entry]:
        """Every history object, one GET each: what reading the history cost before the index."""
        keys = list(self.store.list_keys(self.history))
        return in_order(entry for key in keys if (entry := self._entry(key)) is not None)

    def _rebuilt(self) -> View:
        head = self._rebuild()
        view = View(head, [], [], rebuilt=True)  # everything is in the rebuilt head's tail
        if head.tail:
            self.repair(view)
        return view

    def _rebuild(self) -> HistoryHead:
        names = [key.rsplit("/", 1)[-1].removesuffix(".json")
                 for key in self.store.list_keys(self.pointers)]  # fmt: skip
        return fold(HistoryHead(aliases=dict.fromkeys(names, "")), self.scan())

    # -- writing ------------------------------------------------------------------------------
    @contextmanager
    def writing(self, wait_s: float = 60.0, seed: View | None = None) -> Iterator[Draft]:
        """Hold the index lease and the current head (with what came after it) for the block;
        save the head after it. A failed save is logged, not raised: every move it would record
        is already in the history objects and pointers a reader checks."""
        with self.lock(INDEX_LEASE, wait_s=wait_s):
            draft = self._draft(seed)
            if seed is not None and seed.head == draft.saved:  # what the reader read still holds
                draft.head = fold(draft.head, seed.fresh)
            draft.head = fold(draft.head, self.read_after(draft.head.watermark))
            yield draft
            try:
                self.save(draft)
            except (S3Unavailable, S3AccessDenied) as error:
                LOG.warning("alias history index not updated (readers catch up): %s", error)

    def _draft(self, seed: View | None) -> Draft:
        head = self._load(self.head_key, HistoryHead)
        rebuilt = seed.head if seed is not None and seed.rebuilt else None
        if head is not None and (rebuilt is None or self.archived(head) is not None):
            return Draft(head, saved=head)
        # No head, or a reader rebuilt it because the archive is gone: start from the history.
        base = rebuilt if rebuilt is not None else self._rebuild()
        return Draft(fold(base, head.tail if head is not None else []))

    def save(self, draft: Draft) -> None:
        """Write the head if it changed; first archive the tail if it is full."""
        head = draft.head
        if head == draft.saved:
            return
        if len(head.tail) >= self.seal_at:
            archived = self.archived(head)
            head, entries = seal(head, self.scan() if archived is None else archived)
            self._put(self.archive_key, Archive(entries=entries))
        self._put(self.head_key, head)  # after the archive: a head never names moves it lacks
        draft.head = draft.saved = head

    def repair(self, seed: View) -> None:
        """Fold in what a reader found the index missing, if the lease is free and we may write."""
        try:
            with self.writing(wait_s=0.0, seed=seed):
                pass
        except (LeaseBusy, S3Unavailable, S3AccessDenied) as error:
            LOG.info("left the alias history index to the next writer: %s", error)

    # -- objects ------------------------------------------------------------------------------
    def _entry(self, key: str) -> Entry | None:
        try:
            raw = self.store.get_bytes(key)
        except ObjectNotFound:
            return None
        return Entry(name=key.rsplit("/", 1)[-1], move=AliasMove.model_validate_json(raw))

    def _load(self, key: str, model: type[Doc]) -> Doc | None:
        try:
            raw = self.store.get_bytes(key)
            return model.model_validate_json(gzip.decompress(raw) if key.endswith(".gz") else raw)
        except ObjectNotFound:
            return None
        except (ValidationError, OSError, EOFError) as error:  # damaged: rebuilt, never trusted
            LOG.warning("ignoring %s: %s", key, error)
            return None

    def _put(self, key: str, document: BaseModel) -> None:
        data = document.model_dump_json().encode()
        if key.endswith(".gz"):  # the archive: a tenth of the bytes to move and keep per version
            self.store.put_bytes(key, gzip.compress(data, 6), "application/gzip")
        else:
            self.store.put_bytes(key, data, "application/json")
