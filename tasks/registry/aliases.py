"""Registry aliases: one-object pointers, moved under a lease by compare-and-swap, with an
append-only history that stays complete even when a move is cut short.

A move writes the alias pointer first (it carries the move and the key its history entry will
have), then the history entry, then folds the move into the history index (history_index.py).
If the process or the S3 server dies between the writes, the pointer still holds the move:
`history()` includes it, and the next move of that alias writes the missing entry and folds it
into the index before anything else. Readers answer from the index and check it against what
was written after it, so their cost does not grow with the history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from tasks.registry.errors import RegistryError, actor
from tasks.registry.history_head import fold, mark
from tasks.registry.history_index import SEAL_AT, HistoryIndex, Lock
from tasks.registry.moves import AliasMove, Entry, entry_name, in_force, in_order
from tasks.s3 import ObjectNotFound, ObjectStore

__all__ = ["ANY", "AliasBook", "AliasConflict", "AliasMove"]

ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class AliasConflict(RegistryError):
    """The alias no longer points where the caller expected: someone else moved it first."""


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()  # set_alias(expected=ANY): move whatever the alias points at now


class AliasBook:
    """The aliases of one model: pointers under `<prefix>aliases/`, history under `<prefix>history/`.

    `lock(what)` serialises moves (the registry's lease); `verify(version)` must raise unless the
    version exists and verifies, so no alias ever points at a missing or tampered version.
    """

    def __init__(
        self,
        store: ObjectStore,
        prefix: str,
        name: str,
        lock: Lock,
        verify: Callable[[int], object],
        seal_at: int = SEAL_AT,
    ) -> None:
        self.store, self.prefix, self.name = store, prefix, name
        self.lock, self.verify = lock, verify
        self.index = HistoryIndex(store, prefix, lock, seal_at)

    def _pointer(self, alias: str) -> dict | None:
        try:
            return json.loads(self.store.get_bytes(f"{self.prefix}aliases/{alias}.json"))
        except ObjectNotFound:
            return None

    def alias(self, alias: str) -> int | None:
        """The version an alias points at now, or None if it points nowhere."""
        _check_alias(alias)
        pointer = self._pointer(alias)
        return None if pointer is None else pointer["version"]

    def _alias_names(self) -> list[str]:
        keys = self.store.list_keys(f"{self.prefix}aliases/")
        return [key.rsplit("/", 1)[-1].removesuffix(".json") for key in keys]

    def aliases(self) -> dict[str, int]:
        names = self._alias_names()
        return {name: version for name in names if (version := self.alias(name)) is not None}

    def set_alias(
        self, alias: str, version: int | None, reason: str, expected: int | _Any | None = ANY
    ) -> AliasMove:
        """Point an alias at a complete, verified version (or clear it with None), and record it.

        With `expected`, the move happens only if the alias still points there (compare and
        swap); otherwise AliasConflict. Moves of one alias never interleave (a short lease).
        """
        _check_alias(alias)
        if version is not None:
            self.verify(version)  # must exist and verify before anything points at it
        with self.lock(f"alias-{alias}"):
            pointer = self._pointer(alias)
            current = None if pointer is None else pointer["version"]
            if expected is not ANY and current != expected:
                raise AliasConflict(
                    f"{self.name}: alias {alias!r} points at {_label(current)}, not "
                    f"{_label(expected)} as expected: it was moved meanwhile; not moving it"
                )
            self._complete_history(pointer)
            with self.index.writing() as draft:
                if (cut := _pointer_entry(pointer)) and draft.head.aliases.get(alias) != cut.name:
                    draft.head = mark(fold(draft.head, [cut]), alias, cut.name)
                if current == version:  # already there (a re-run): nothing moves, nothing recorded
                    return self._unmoved(alias, pointer, reason)
                if alias not in draft.head.aliases:  # readers find pointers by the head's names
                    draft.head = mark(draft.head, alias, "")
                    self.index.save(draft)
                entry = self._move(alias, current, version, reason)
                draft.head = mark(fold(draft.head, [entry]), alias, entry.name)
                return entry.move

    def _unmoved(self, alias: str, pointer: dict | None, reason: str) -> AliasMove:
        if pointer and "move" in pointer:
            return AliasMove.model_validate(pointer["move"])
        version = None if pointer is None else pointer["version"]
        return AliasMove(alias=alias, from_version=version, to_version=version,
                         at=datetime.now(UTC), by=actor(), reason=reason)  # fmt: skip

    def _move(self, alias: str, current: int | None, version: int | None, reason: str) -> Entry:
        move = AliasMove(
            alias=alias, from_version=current, to_version=version, at=datetime.now(UTC),
            by=actor(), reason=reason,
        )  # fmt: skip
        name = entry_name(move)
        history_key = f"{self.prefix}history/{name}"
        # A cleared alias keeps a pointer to nothing, so the move it records is never lost.
        pointer = {
            "alias": alias, "version": version, "at": move.at.isoformat(), "by": move.by,
            "move": move.model_dump(mode="json"), "history_key": history_key,
        }  # fmt: skip
        key = f"{self.prefix}aliases/{alias}.json"
        self.store.put_bytes(key, json.dumps(pointer).encode(), "application/json")
        self.store.put_bytes(history_key, move.model_dump_json().encode(), "application/json")
        return Entry(name=name, move=move)

    def _complete_history(self, pointer: dict | None) -> None:
        """Write the history entry of the pointer's move if a crash left it unwritten."""
        if pointer and "history_key" in pointer and not self.store.exists(pointer["history_key"]):
            move = AliasMove.model_validate(pointer["move"])
            self.store.put_bytes(
                pointer["history_key"], move.model_dump_json().encode(), "application/json"
            )

    def history(self) -> list[AliasMove]:
        """Every alias move ever made, oldest first (including one whose entry a crash cut)."""
        view = self.index.view(archive=True)
        assert view.archive is not None
        names = {*view.head.aliases, *(entry.move.alias for entry in view.fresh)}
        # Pointers first: where a move is also in the index or its object, those copies stay.
        found = [*self._pointer_entries(names), *view.archive, *view.head.tail, *view.fresh]
        return [entry.move for entry in in_order(found)]

    def history_by_scan(self) -> list[AliasMove]:
        """history() as it was before the index: one GET per move ever made (for comparison)."""
        found = [*self._pointer_entries(self._alias_names()), *self.index.scan()]
        return [entry.move for entry in in_order(found)]

    def _pointer_entries(self, names: Iterable[str]) -> list[Entry]:
        pointers = (self._pointer(name) for name in sorted(names) if ALIAS_PATTERN.match(name))
        return [entry for pointer in pointers if (entry := _pointer_entry(pointer))]

    def version_at(self, alias: str, when: datetime) -> int | None:
        """Which version the alias pointed at, at a given moment ("what served on that day")."""
        view = self.index.view(archive=False)
        found = [
            *self._pointer_entries([alias]), *view.head.tail, *view.fresh,
            *self.index.archived_candidates(view.head, alias, when),
        ]  # fmt: skip
        entry = in_force(found, alias, when)
        return None if entry is None else entry.move.to_version


def _pointer_entry(pointer: dict | None) -> Entry | None:
    """The move an alias pointer carries, as a history entry (None for a pointer without one)."""
    if not pointer or "history_key" not in pointer or "move" not in pointer:
        return None
    name = pointer["history_key"].rsplit("/", 1)[-1]
    return Entry(name=name, move=AliasMove.model_validate(pointer["move"]))


def _label(version: object) -> str:
    return "nothing" if version is None else f"v{version}"


def _check_alias(alias: str) -> None:
    if not ALIAS_PATTERN.match(alias):
        raise RegistryError(f"alias {alias!r} is not valid: lowercase letters, digits and '-'")
