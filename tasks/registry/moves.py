"""The alias history's records: one move, the name of the object that holds it, and the two
questions every reader asks of a set of them (in what order, and what was in force when)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AliasMove(BaseModel):
    """One entry of the append-only alias history."""

    model_config = ConfigDict(frozen=True)

    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    by: str
    reason: str


class Entry(BaseModel):
    """A move with the name of its history object (`history/<name>`): names order the history."""

    model_config = ConfigDict(frozen=True)

    name: str
    move: AliasMove


def entry_name(move: AliasMove) -> str:
    """Time first, so key order is time order; the random tail keeps two moves made in the same
    microsecond (by two hosts) apart."""
    return f"{move.at:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.json"


def in_order(entries: Iterable[Entry]) -> list[Entry]:
    """History order, each move once: a move may be found twice (in the index and again in its
    history object or its alias pointer), always with the same content."""
    return sorted({entry.name: entry for entry in entries}.values(), key=lambda e: e.name)


def in_force(entries: Iterable[Entry | None], alias: str, when: datetime) -> Entry | None:
    """The alias's move in force at `when`: the last one, in history order, made at or before it."""
    best = None
    for entry in entries:
        if entry is None or entry.move.alias != alias or entry.move.at > when:
            continue
        if best is None or entry.name > best.name:
            best = entry
    return best
