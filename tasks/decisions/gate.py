"""The quality gate: a pure function from evaluations to a verdict with its reasons.

A candidate is blessed only if it meets the absolute bar, is not worse than the serving champion
on the same holdout by more than the margin (TFX-style), behaves sensibly, and is fair across slices.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class SliceError(BaseModel):
    model_config = ConfigDict(frozen=True)

    column: str
    value: str
    rows: int
    mape: float
    rmse: float


class BehaviourCheck(BaseModel):
    """One behavioural test: what was perturbed, how often the model misbehaved, and by how much."""

    model_config = ConfigDict(frozen=True)

    kind: str  # "directional" | "invariance" | "edge-cases"
    column: str | None
    cases: int
    failures: int
    worst: float
    detail: str


class Evaluation(BaseModel):
    """A model's numbers on one holdout; the gate compares two of these on the same holdout."""

    model_config = ConfigDict(frozen=True)

    rows: int
    metrics: dict[str, float]
    slices: list[SliceError]
    behaviour: list[BehaviourCheck]


class GatePolicy(BaseModel):
    """What a candidate must reach; set per run as MLOPS_GATE__<FIELD> (or the flat MLOPS_MIN_R2...)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    min_r2: float = Field(0.85, ge=-1, le=1, description="lowest holdout R² a candidate may have")
    max_mape: float = Field(0.25, gt=0, description="highest holdout MAPE (0.25 = 25%)")
    max_rmse: float | None = Field(None, gt=0, description="highest holdout RMSE, target units")
    champion_margin: float = Field(
        0.02, ge=0, le=1, description="candidate RMSE may exceed the champion's by this share"
    )
    slice_error_factor: float = Field(
        2.0, ge=1, description="a slice's MAPE may be at most this many times the overall MAPE"
    )
    min_slice_rows: int = Field(30, ge=1, description="slices smaller than this are not judged")
    invariance_tolerance: float = Field(
        0.05, ge=0, description="largest mean relative price change an irrelevant edit may cause"
    )


class GateCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    observed: float | None
    threshold: float | None
    reason: str


class GateVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    champion_version: int | None
    checks: list[GateCheck]

    @property
    def reasons(self) -> list[str]:
        """Why it failed (or, when it passed, everything that was checked)."""
        failed = [check.reason for check in self.checks if not check.passed]
        return failed or [check.reason for check in self.checks]


def _bound(name: str, observed: float, threshold: float, at_least: bool) -> GateCheck:
    passed = math.isfinite(observed) and (
        observed >= threshold if at_least else observed <= threshold
    )
    relation = (">=" if passed else "<") if at_least else ("<=" if passed else ">")
    return GateCheck(
        name=name,
        passed=passed,
        observed=observed,
        threshold=threshold,
        reason=f"{name} {observed:.4g} {relation} {threshold:.4g}",
    )


def _absolute(candidate: Evaluation, policy: GatePolicy) -> list[GateCheck]:
    checks = [
        _bound("r2", candidate.metrics["r2"], policy.min_r2, at_least=True),
        _bound("mape", candidate.metrics["mape"], policy.max_mape, at_least=False),
    ]
    if policy.max_rmse is not None:
        checks.append(_bound("rmse", candidate.metrics["rmse"], policy.max_rmse, at_least=False))
    return checks


def _against_champion(
    candidate: Evaluation, champion: Evaluation | None, version: int | None, policy: GatePolicy
) -> GateCheck:
    if champion is None:
        return GateCheck(
            name="champion",
            passed=True,
            observed=None,
            threshold=None,
            reason="no champion yet: absolute thresholds only",
        )
    if champion.rows != candidate.rows:
        return GateCheck(
            name="champion",
            passed=False,
            observed=None,
            threshold=None,
            reason="champion and candidate were not scored on the same holdout",
        )
    limit = champion.metrics["rmse"] * (1 + policy.champion_margin)
    check = _bound(f"rmse vs champion v{version}", candidate.metrics["rmse"], limit, at_least=False)
    return check.model_copy(
        update={
            "reason": f"{check.reason} (champion v{version} rmse "
            f"{champion.metrics['rmse']:.4g} + {policy.champion_margin:.0%} margin)"
        }
    )


def _behaviour(candidate: Evaluation, policy: GatePolicy) -> list[GateCheck]:
    checks = []
    for item in candidate.behaviour:
        label = f"{item.kind} {item.column}" if item.column else item.kind
        if item.kind == "invariance":
            checks.append(_bound(label, item.worst, policy.invariance_tolerance, at_least=False))
            continue
        checks.append(
            GateCheck(
                name=label,
                passed=item.failures == 0,
                observed=item.failures,
                threshold=0,
                reason=f"{label}: {item.failures}/{item.cases} cases failed ({item.detail})",
            )
        )
    return checks


def _slices(candidate: Evaluation, policy: GatePolicy) -> list[GateCheck]:
    overall = candidate.metrics["mape"]
    limit = overall * policy.slice_error_factor
    checks = []
    for item in candidate.slices:
        if item.rows < policy.min_slice_rows:
            continue
        checks.append(
            _bound(f"slice {item.column}={item.value} mape", item.mape, limit, at_least=False)
        )
    return checks


def judge_candidate(
    candidate: Evaluation,
    champion: Evaluation | None,
    policy: GatePolicy,
    champion_version: int | None = None,
) -> GateVerdict:
    """Bless the candidate or refuse it, with every check and its numbers."""
    checks = [
        *_absolute(candidate, policy),
        _against_champion(candidate, champion, champion_version, policy),
        *_behaviour(candidate, policy),
        *_slices(candidate, policy),
    ]
    return GateVerdict(
        passed=all(check.passed for check in checks),
        champion_version=champion_version,
        checks=checks,
    )
