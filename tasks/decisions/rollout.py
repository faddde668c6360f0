"""The rollout plan: how a registered version enters service, and what is served right now."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RolloutKind = Literal["first", "canary", "already-champion", "already-canary"]


class ServingState(BaseModel):
    """What is being served right now."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    stable_version: int | None
    canary_version: int | None = None
    canary_percent: int = Field(0, ge=0, le=100)
    ready: bool = False
    detail: dict[str, object] = Field(default_factory=dict)


def plan_rollout(champion: int | None, canary: int | None, version: int) -> RolloutKind:
    """How a newly registered version enters service, given the aliases now."""
    if champion is None:
        return "first"
    if version == champion:
        return "already-champion"
    if version == canary:
        return "already-canary"
    return "canary"
