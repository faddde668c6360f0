"""Registry aliases: one-object pointers, moved under a lease by compare-and-swap, with an
append-only history that stays complete even when a move is cut short.

A move writes the alias pointer first (it carries the move and the key its history entry will
have), then the history entry. If the process or the S3 server dies between the two, the
pointer still holds the move: `history()` includes it, and the next move of that alias writes
the missing entry before anything else.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from tasks.registry.errors import RegistryError, actor
from tasks.s3 import ObjectNotFound, ObjectStore

ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class AliasConflict(RegistryError):
    """The alias no longer points where the caller expected: someone else moved it first."""


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()  # set_alias(expected=ANY): move whatever the alias points at now


class AliasMove(BaseModel):
    """One entry of the append-only alias history."""

    model_config = ConfigDict(frozen=True)

    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    by: str
    reason: str


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
        lock: Callable[[str], AbstractContextManager[str]],
        verify: Callable[[int], object],
    ) -> None:
        self.store, self.prefix, self.name = store, prefix, name
        self.lock, self.verify = lock, verify

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
            if current == version:  # already there (a re-run): nothing moves, nothing recorded
                return self._unmoved(alias, pointer, reason)
            return self._move(alias, current, version, reason)

    def _unmoved(self, alias: str, pointer: dict | None, reason: str) -> AliasMove:
        if pointer and "move" in pointer:
            return AliasMove.model_validate(pointer["move"])
        version = None if pointer is None else pointer["version"]
        return AliasMove(alias=alias, from_version=version, to_version=version,
                         at=datetime.now(UTC), by=actor(), reason=reason)  # fmt: skip

    def _move(self, alias: str, current: int | None, version: int | None, reason: str) -> AliasMove:
        move = AliasMove(
            alias=alias, from_version=current, to_version=version, at=datetime.now(UTC),
            by=actor(), reason=reason,
        )  # fmt: skip
        history_key = f"{self.prefix}history/{move.at:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.json"
        # A cleared alias keeps a pointer to nothing, so the move it records is never lost.
        pointer = {
            "alias": alias, "version": version, "at": move.at.isoformat(), "by": move.by,
            "move": move.model_dump(mode="json"), "history_key": history_key,
        }  # fmt: skip
        key = f"{self.prefix}aliases/{alias}.json"
        self.store.put_bytes(key, json.dumps(pointer).encode(), "application/json")
        self.store.put_bytes(history_key, move.model_dump_json().encode(), "application/json")
        return move

    def _complete_history(self, pointer: dict | None) -> None:
        """Write the history entry of the pointer's move if a crash left it unwritten."""
        if pointer and "history_key" in pointer and not self.store.exists(pointer["history_key"]):
            move = AliasMove.model_validate(pointer["move"])
            self.store.put_bytes(
                pointer["history_key"], move.model_dump_json().encode(), "application/json"
            )

    def history(self) -> list[AliasMove]:
        """Every alias move ever made, oldest first (including one whose entry a crash cut)."""
        keys = set(self.store.list_keys(f"{self.prefix}history/"))
        unwritten = {
            pointer["history_key"]: AliasMove.model_validate(pointer["move"])
            for pointer in self._pointers(self._alias_names())
            if "history_key" in pointer and pointer["history_key"] not in keys
        }
        moves = {key: AliasMove.model_validate_json(self.store.get_bytes(key)) for key in keys}
        return [move for _, move in sorted({**moves, **unwritten}.items())]

    def _pointers(self, names: Iterable[str]) -> list[dict]:
        return [pointer for name in names if (pointer := self._pointer(name)) is not None]

    def version_at(self, alias: str, when: datetime) -> int | None:
        """Which version the alias pointed at, at a given moment ("what served on that day")."""
        version = None
        for move in self.history():
            if move.alias == alias and move.at <= when:
                version = move.to_version
        return version


def _label(version: object) -> str:
    return "nothing" if version is None else f"v{version}"


def _check_alias(alias: str) -> None:
    if not ALIAS_PATTERN.match(alias):
        raise RegistryError(f"alias {alias!r} is not valid: lowercase letters, digits and '-'")
