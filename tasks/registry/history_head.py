"""The alias history index's documents (layout and reading in history_index.py) and the pure
steps that change them: folding moves in, marking a pointer's move as in, sealing the tail."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.registry.moves import Entry, in_order


class ArchiveSummary(BaseModel):
    """What a reader needs of the archive without reading it."""

    model_config = ConfigDict(frozen=True)

    count: int
    min_at: datetime
    max_at: datetime
    last: dict[str, Entry]  # each alias's last archived move: in force after max_at


class HistoryHead(BaseModel):
    """`index/history/head.json`: small, rewritten with every move; all a reader of the recent
    history needs, with the pointers and the objects after the watermark."""

    model_config = ConfigDict(frozen=True)

    format: Literal[1] = 1
    watermark: str = ""  # the last history object name read into the index ("" = none yet)
    aliases: dict[str, str] = Field(default_factory=dict)  # alias -> its pointer's move folded in
    archive: ArchiveSummary | None = None
    tail: list[Entry] = Field(default_factory=list)  # the newest moves, in history order


class Archive(BaseModel):
    """`index/history/archive.json.gz`: every move sealed out of the head, in history order."""

    entries: list[Entry]


def fold(head: HistoryHead, entries: Iterable[Entry]) -> HistoryHead:
    """The head with `entries` in its tail, its watermark past them, their aliases named."""
    held = {entry.name for entry in head.tail}
    new = [entry for entry in entries if entry.name not in held]
    if not new:
        return head
    return head.model_copy(update={
        "tail": in_order([*head.tail, *new]),
        "watermark": max(head.watermark, *(entry.name for entry in new)),
        "aliases": {**{entry.move.alias: "" for entry in new}, **head.aliases},
    })  # fmt: skip


def mark(head: HistoryHead, alias: str, name: str) -> HistoryHead:
    """Record that the move `alias`'s pointer carries (history object `name`) is folded in."""
    return head.model_copy(update={"aliases": {**head.aliases, alias: name}})


def seal(head: HistoryHead, archived: list[Entry]) -> tuple[HistoryHead, list[Entry]]:
    """Move the tail into the archive: the new head and the new archive's entries."""
    entries = in_order([*archived, *head.tail])
    last = {entry.move.alias: entry for entry in entries}  # in order: the latest stays
    summary = ArchiveSummary(count=len(entries), min_at=min(e.move.at for e in entries),
                             max_at=max(e.move.at for e in entries), last=last)  # fmt: skip
    return head.model_copy(update={"archive": summary, "tail": []}), entries
