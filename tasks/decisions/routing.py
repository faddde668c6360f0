"""Canary routing decisions: which version answers a request, and which versions may get traffic.

Pure functions of typed inputs (no KServe, no I/O): the served model calls them on every request
and on every routing change, and the unit tests call them alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Routing(BaseModel):
    """The split: the stable version serves what the canary does not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stable_version: int | None = Field(None, ge=1, description="version serving the rest")
    canary_version: int | None = Field(None, ge=1, description="version on trial, if any")
    canary_percent: float = Field(0, ge=0, le=100, description="share of requests to the canary")

    @model_validator(mode="after")
    def _consistent(self) -> Routing:
        if self.canary_version is not None and self.stable_version is None:
            raise ValueError("a canary needs a stable version to fall back on")
        if self.canary_version is not None and self.canary_version == self.stable_version:
            raise ValueError(f"v{self.canary_version} cannot be both stable and canary")
        if self.canary_percent > 0 and self.canary_version is None:
            raise ValueError("canary_percent > 0 needs a canary_version")
        return self

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(v for v in (self.stable_version, self.canary_version) if v is not None)


class ServeOptions(BaseModel):
    """How the local model server behaves; every field has a default that works locally."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    routing: Routing = Field(default_factory=Routing, description="the split to start with")
    max_batch: int = Field(1000, ge=1, le=100_000, description="most instances in one request")
    max_body_bytes: int = Field(
        8 * 2**20, ge=1024, le=2**30, description="largest request body; larger gets HTTP 413"
    )
    log_requests: bool = Field(True, description="write every request to S3 serving logs")
    log_flush_seconds: float = Field(10.0, gt=0, le=3600, description="longest wait between files")
    log_flush_rows: int = Field(5000, ge=1, description="rows that trigger a serving-log file")
    reservoir_size: int = Field(1000, ge=10, le=100_000, description="predictions kept per version")
    seed: int = Field(0, ge=0, description="seed of the routing and reservoir random draws")
    model_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="OpenMP/BLAS threads per prediction; 1 suits many small requests",
    )


class Verdict(BaseModel):
    """A yes/no with its reasons, so callers can show why."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    reasons: tuple[str, ...] = ()


def choose_version(routing: Routing, draw: float) -> int | None:
    """The version for a request, given a uniform draw in [0, 1)."""
    if routing.canary_version is not None and draw * 100 < routing.canary_percent:
        return routing.canary_version
    return routing.stable_version


def bad_prediction_reason(predictions: Sequence[float], expected: int) -> str | None:
    """Why a batch of predictions cannot be served (wrong count, NaN or inf), or None if fine."""
    if len(predictions) != expected:
        return f"returned {len(predictions)} predictions for {expected} rows"
    bad = sum(1 for value in predictions if not math.isfinite(value))
    if bad:
        return f"returned {bad} non-finite predictions (NaN or inf) out of {expected}"
    return None


def judge_routing_change(
    requested: Routing,
    failed: Mapping[int, str],
    load_errors: Mapping[int, str],
) -> Verdict:
    """May this split be applied? Never if a version it names failed to load or failed live."""
    reasons = [
        f"v{v} failed to load: {load_errors[v]}" for v in requested.versions if v in load_errors
    ]
    for version in requested.versions:
        if version in failed and not (
            version == requested.canary_version and not requested.canary_percent
        ):
            reasons.append(
                f"v{version} was taken out of traffic after failing live: {failed[version]}"
            )
    return Verdict(ok=not reasons, reasons=tuple(reasons))


def without_canary_traffic(routing: Routing) -> Routing:
    """The same split with the canary at 0%: what a live canary failure leaves behind."""
    return routing.model_copy(update={"canary_percent": 0})


def binomial_bound(trials: int, share: float, sigmas: float = 4.0) -> tuple[float, float]:
    """The range a binomial count of `trials` at `share` falls in, `sigmas` deviations wide."""
    mean = trials * share
    spread = sigmas * math.sqrt(trials * share * (1 - share))
    return mean - spread, mean + spread


def routing_from_aliases(aliases: Mapping[str, int], canary_percent: float) -> Routing:
    """The split the registry's aliases describe: what a server that (re)starts should serve.

    The champion is stable; a canary alias comes back at `canary_percent`, since the alias does
    not record a share that was ramped by hand. No champion: nothing to serve yet.
    """
    champion, canary = aliases.get("champion"), aliases.get("canary")
    if champion is None:
        return Routing()
    if canary is None or canary == champion:
        return Routing(stable_version=champion)
    return Routing(stable_version=champion, canary_version=canary, canary_percent=canary_percent)
