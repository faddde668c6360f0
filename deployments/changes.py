"""What one run of the set-up did to each object it owns: created, updated or left alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Change:
    kind: str  # "work pool", "deployment", "triggers", "automation"
    name: str
    outcome: Outcome
    detail: str = ""

    def line(self) -> str:
        detail = f"  ({self.detail})" if self.detail else ""
        return f"  {self.outcome:<9}  {self.kind:<10}  {self.name}{detail}"


@dataclass(frozen=True)
class SetupReport:
    target: str
    image: str | None
    changes: tuple[Change, ...]

    def outcomes(self, kind: str) -> dict[str, Outcome]:
        """Name → outcome of every object of one kind."""
        return {change.name: change.outcome for change in self.changes if change.kind == kind}

    @property
    def changed(self) -> bool:
        return any(change.outcome != "unchanged" for change in self.changes)

    def summary(self) -> str:
        counts = {
            outcome: sum(change.outcome == outcome for change in self.changes)
            for outcome in ("created", "updated", "unchanged")
        }
        image = f", image {self.image}" if self.image else ""
        head = f"set-up of the {self.target} target{image}: " + ", ".join(
            f"{count} {outcome}" for outcome, count in counts.items()
        )
        return "\n".join([head, *(change.line() for change in self.changes)])
