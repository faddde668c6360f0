"""The quality gate: a pure function from evaluations to a verdict with its reasons.

A candidate is blessed only if it beats a naive baseline (the training median for every holdout row)
by a stated margin, is not worse than the serving champion on the same holdout by more than the
margin (TFX-style), behaves sensibly and is fair across slices; absolute bars are optional. Nothing
assumes the target's sign: MAE carries the baseline and slice checks, MAPE exists only when defined.

A classifier is judged the same way on log loss: the baseline predicts the training set's class
prior for every row; champion and slice parity compare log losses; directional checks are
regression-only and the verdict says they were skipped.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SliceError(BaseModel):
    model_config = ConfigDict(frozen=True)

    column: str
    value: str
    rows: int
    mae: float | None = None  # regression
    rmse: float | None = None  # regression
    mape: float | None = None  # only for a target the contract declares strictly positive
    accuracy: float | None = None  # classification
    log_loss: float | None = None  # classification


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
    baseline: dict[str, float] | None = None  # the naive baseline's metrics on this holdout
    task: Literal["regression", "classification"] = "regression"

    @property
    def key_metric(self) -> str:
        """What the baseline, champion and slice checks compare: MAE/RMSE, or log loss."""
        return "log_loss" if self.task == "classification" else "mae"


class GatePolicy(BaseModel):
    """What a candidate must reach; set per run as MLOPS_GATE__<FIELD> (or the flat MLOPS_MIN_R2...)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    min_improvement_over_baseline: float = Field(
        0.10,
        ge=0,
        lt=1,
        description="holdout MAE must be at least this share below the naive baseline's MAE (the"
        " training median predicted for every holdout row); for a classifier, holdout log loss"
        " below the log loss of the training class prior predicted for every row",
    )
    min_r2: float | None = Field(None, ge=-1, le=1, description="lowest holdout R²; None = off")
    max_mape: float | None = Field(
        None, gt=0, description="highest holdout MAPE (0.25 = 25%; positive targets); None = off"
    )
    max_rmse: float | None = Field(None, gt=0, description="highest holdout RMSE; None = off")
    min_accuracy: float | None = Field(
        None, ge=0, le=1, description="lowest holdout accuracy (classifiers); None = off"
    )
    min_roc_auc: float | None = Field(
        None, ge=0, le=1, description="lowest holdout ROC AUC (classifiers); None = off"
    )
    champion_margin: float = Field(
        0.02,
        ge=0,
        le=1,
        description="candidate RMSE (a classifier's log loss) may exceed the champion's by this"
        " share",
    )
    slice_error_factor: float = Field(
        2.0,
        ge=1,
        description="a slice's MAE (a classifier's log loss) may be at most this many times the"
        " overall one",
    )
    min_slice_rows: int = Field(30, ge=1, description="slices smaller than this are not judged")
    invariance_tolerance: float = Field(
        0.05,
        ge=0,
        description="mean relative change in predictions an irrelevant edit may cause, at most",
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
    """The optional bars a model may set for itself; a bar on an undefined metric fails."""
    bars = [("r2", policy.min_r2, True), ("mape", policy.max_mape, False),
            ("rmse", policy.max_rmse, False), ("accuracy", policy.min_accuracy, True),
            ("roc_auc", policy.min_roc_auc, True)]  # fmt: skip
    checks = []
    for name, threshold, at_least in bars:
        if threshold is None:
            continue
        if name not in candidate.metrics:
            reason = f"{name} bar {threshold:.4g} set, but {name} is undefined for this target"
            checks.append(GateCheck(name=name, passed=False, observed=None, threshold=threshold,
                                    reason=reason))  # fmt: skip
            continue
        checks.append(_bound(name, candidate.metrics[name], threshold, at_least))
    return checks


BASELINE = {"regression": "training median", "classification": "training class prior"}


def _against_baseline(candidate: Evaluation, policy: GatePolicy) -> GateCheck:
    """Holdout MAE (log loss) at least `min_improvement_over_baseline` below the naive
    baseline's: the training median (the training class prior) for every row."""
    key = candidate.key_metric
    if candidate.baseline is None:
        return GateCheck(name=f"{key} vs baseline", passed=False, observed=None, threshold=None,
                         reason="no naive baseline was scored on this holdout")  # fmt: skip
    mae, base = candidate.metrics[key], candidate.baseline[key]
    limit = base * (1 - policy.min_improvement_over_baseline)
    improvement = (base - mae) / base if base > 0 else -math.inf
    passed = math.isfinite(mae) and base > 0 and mae <= limit
    return GateCheck(
        name=f"{key} vs baseline",
        passed=passed,
        observed=mae,
        threshold=limit,
        reason=f"{key} {mae:.4g} vs baseline ({BASELINE[candidate.task]}) {key} {base:.4g}:"
        f" improvement {improvement:.1%} {'>=' if passed else '<'} the "
        f"{policy.min_improvement_over_baseline:.0%} required",
    )


def _against_champion(
    candidate: Evaluation, champion: Evaluation | None, version: int | None, policy: GatePolicy
) -> GateCheck:
    if champion is None:
        return GateCheck(
            name="champion",
            passed=True,
            observed=None,
            threshold=None,
            reason="no champion yet: judged against the baseline",
        )
    if champion.rows != candidate.rows:
        return GateCheck(
            name="champion",
            passed=False,
            observed=None,
            threshold=None,
            reason="champion and candidate were not scored on the same holdout",
        )
    key = "log_loss" if candidate.task == "classification" else "rmse"
    if key not in champion.metrics:
        return GateCheck(name="champion", passed=False, observed=None, threshold=None,
                         reason=f"champion v{version} has no {key} on this holdout: it was"
                         f" scored as {champion.task}, the candidate as {candidate.task}")  # fmt: skip
    limit = champion.metrics[key] * (1 + policy.champion_margin)
    check = _bound(f"{key} vs champion v{version}", candidate.metrics[key], limit, at_least=False)
    return check.model_copy(
        update={
            "reason": f"{check.reason} (champion v{version} {key} "
            f"{champion.metrics[key]:.4g} + {policy.champion_margin:.0%} margin)"
        }
    )


def _behaviour(candidate: Evaluation, policy: GatePolicy) -> list[GateCheck]:
    checks = []
    if candidate.task == "classification":
        checks.append(GateCheck(name="directional", passed=True, observed=None, threshold=None,
                                reason="directional checks are regression-only: skipped for"
                                " classification"))  # fmt: skip
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
    """Slice parity on MAE, which needs no sign of the target (a classifier's: log loss)."""
    key = candidate.key_metric
    limit = candidate.metrics[key] * policy.slice_error_factor
    checks = []
    for item in candidate.slices:
        if item.rows < policy.min_slice_rows:
            continue
        observed = getattr(item, key)
        check = _bound(f"slice {item.column}={item.value} {key}", observed, limit, at_least=False)
        reason = f"{check.reason} ({policy.slice_error_factor:g} x overall {key})"
        checks.append(check.model_copy(update={"reason": reason}))
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
        _against_baseline(candidate, policy),
        _against_champion(candidate, champion, champion_version, policy),
        *_behaviour(candidate, policy),
        *_slices(candidate, policy),
    ]
    return GateVerdict(
        passed=all(check.passed for check in checks),
        champion_version=champion_version,
        checks=checks,
    )
