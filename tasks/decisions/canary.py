"""The canary verdict: promote, roll back or wait, with stated error rates under any number of looks.

Pure: no Prefect, no I/O. A task counts each version's evidence in the canary window (requests,
errors, a latency histogram, prediction and labelled-loss moments) and calls `decide_canary`.

What it guarantees, however often it is called on growing evidence (see `sequential` for the
method and its sources):
- α, false rollback: a canary no worse than stable (same error rate, same loss, p95 within the
  allowed ratio, predictions within the allowed shift) is rolled back on evidence with probability
  at most α. α is split evenly over the five checks that can roll back (Bonferroni); the shift
  check of a classifier with three or more classes splits its share again over the classes.
- β, false promotion: a canary worse than stable by the stated degradation on a required metric
  (labelled loss +`max_loss_increase`, error rate +`max_error_rate_excess`, p95 above
  `max_p95_ratio`× stable or the SLO, predictions shifted by `max_prediction_shift` SDs) is
  promoted with probability at most β. Promotion needs the metric's confidence bound inside the
  margin, so only one check has to hold for a worse canary: no split is needed.
Every check ends each look in one of three states: worse (roll back), not worse (shown inside the
margin), unknown (wait). "Not significantly worse" is unknown, never a pass. When the window ends
undecided the canary is rolled back as inconclusive: a canary never wins by default.
Without labels in the window the accuracy check stays unknown; unless the policy requires labels,
the canary may then be promoted on the other checks, and the verdict says accuracy was not
verified so the guard watches it as labels arrive.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.decisions.canary_checks import (
    CHECKS,
    LATENCY_BOUNDS_MS,
    CheckResult,
    accuracy_check,
)
from tasks.decisions.sequential import Moments

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class EvidenceError(ValueError):
    """Evidence is missing, inconsistent or of the wrong shape."""


class VersionEvidence(BaseModel):
    """What one version did in the canary window, as sufficient statistics."""

    model_config = _FROZEN

    version: int = Field(ge=0, description="Registry version number.")
    requests: int = Field(ge=0, description="Requests served in the canary window.")
    errors: int = Field(ge=0, description="Requests that failed (5xx, exceptions, NaN answers).")
    latency_counts: tuple[int, ...] = Field(
        (), description="Answered requests per LATENCY_BOUNDS_MS bucket (one overflow bucket)."
    )
    predictions: Moments = Field(
        default_factory=Moments,
        description="Predictions served (a binary classifier's: its second class's probability).",
    )
    class_probabilities: tuple[Moments, ...] = Field(
        (),
        description="A classifier of three or more classes: each class's probability, watched"
        " for a shift class by class instead of `predictions`.",
    )
    losses: Moments = Field(
        default_factory=Moments, description="Per-row loss on rows whose label has arrived."
    )
    loss_name: str = Field("absolute error", description="What `losses` measures, for reasons.")
    elapsed_s: float = Field(0.0, ge=0, description="Seconds since the canary took traffic.")

    @model_validator(mode="after")
    def _consistent(self) -> VersionEvidence:
        if self.errors > self.requests:
            raise ValueError(f"errors {self.errors} exceed requests {self.requests}")
        if self.latency_counts and len(self.latency_counts) != len(LATENCY_BOUNDS_MS) + 1:
            raise ValueError(f"latency_counts needs {len(LATENCY_BOUNDS_MS) + 1} buckets")
        if any(c < 0 for c in self.latency_counts) or sum(self.latency_counts) > self.requests:
            raise ValueError("latency_counts must be non-negative and count at most the requests")
        if self.losses.n and self.losses.mean < 0:
            raise ValueError("a loss cannot be negative on average")
        return self

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class CanaryPolicy(BaseModel):
    """Error rates, margins and window of the canary verdict."""

    model_config = _FROZEN

    alpha: float = Field(
        0.05, gt=0, lt=0.5, description="False-rollback rate, all checks together."
    )
    beta: float = Field(0.05, gt=0, lt=0.5, description="False-promotion rate at the margins.")
    max_loss_increase: float = Field(
        0.10, gt=0, description="Labelled loss margin, relative to stable (0.1 = +10%)."
    )
    max_error_rate: float = Field(0.01, gt=0, lt=1, description="Absolute canary error-rate cap.")
    max_error_rate_excess: float = Field(
        0.005, gt=0, lt=1, description="Error-rate margin over stable's (0.005 = +0.5 points)."
    )
    latency_p95_slo_ms: float = Field(500.0, gt=0, description="p95 latency SLO in milliseconds.")
    max_p95_ratio: float = Field(1.5, ge=1, description="Max canary p95 / stable p95.")
    max_prediction_shift: float = Field(
        0.25, gt=0, description="Prediction-mean margin in stable's prediction SDs."
    )
    min_requests: int = Field(50, ge=1, description="Canary requests needed before a promotion.")
    min_samples: int = Field(30, ge=2, description="Per-arm rows needed to judge a mean.")
    require_labels: bool = Field(False, description="Promote only with labelled evidence.")
    tuned_for: int = Field(
        2000, ge=10, description="Observations at which the bounds are tightest (ρ of AsympCS)."
    )
    max_requests: int = Field(100_000, ge=1, description="Undecided after this many → roll back.")
    max_window_s: float = Field(3600.0, gt=0, description="Undecided after this long → roll back.")

    @model_validator(mode="after")
    def _window_after_minimum(self) -> CanaryPolicy:
        if self.max_requests < self.min_requests:
            raise ValueError("max_requests must be at least min_requests")
        return self

    @property
    def check_alpha(self) -> float:
        return self.alpha / len(CHECKS)


class EvidenceSizes(BaseModel):
    """How much evidence the verdict rests on."""

    model_config = _FROZEN

    stable_requests: int
    canary_requests: int
    stable_labels: int
    canary_labels: int
    canary_elapsed_s: float


class CanaryVerdict(BaseModel):
    """The decision, why, and every check behind it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["promote", "rollback", "wait"]
    basis: Literal["evidence", "window-ended", "pending"] = Field(
        description="Decided by the checks, by the window running out, or not yet."
    )
    accuracy_verified: bool = Field(description="Labelled loss shown not worse before promoting.")
    stable_version: int
    canary_version: int
    reasons: list[str] = Field(min_length=1)
    checks: list[CheckResult]
    evidence: EvidenceSizes


def _window_exhausted(c: VersionEvidence, p: CanaryPolicy) -> str | None:
    if c.requests >= p.max_requests:
        return f"canary undecided after {c.requests} requests (max {p.max_requests})"
    if c.elapsed_s >= p.max_window_s:
        return f"canary undecided after {c.elapsed_s:.0f} s (max {p.max_window_s:.0f} s)"
    return None


def decide_canary(
    stable: VersionEvidence, canary: VersionEvidence, policy: CanaryPolicy
) -> CanaryVerdict:
    """Roll back when a check shows the canary worse, promote when every required check shows it
    not worse (and it served `min_requests`), else wait until the window ends."""
    if stable.version == canary.version:
        raise ValueError(f"stable and canary are the same version v{canary.version}")
    accuracy = accuracy_check(stable, canary, policy)
    checks = [check(stable, canary, policy, accuracy) for check in CHECKS]
    worse = [c.detail for c in checks if c.status == "worse"]
    pending = [c.detail for c in checks if c.status == "unknown" and c.required]
    if canary.requests < policy.min_requests:
        pending.append(f"canary served {canary.requests} of {policy.min_requests} requests")
    exhausted = _window_exhausted(canary, policy)
    verified = accuracy.status == "not-worse"
    if worse:
        action, basis, reasons = "rollback", "evidence", worse
    elif not pending:
        action, basis, reasons = "promote", "evidence", [c.detail for c in checks]
        if not verified:
            labels = f"{canary.losses.n} canary / {stable.losses.n} stable labelled rows"
            reasons.insert(0, f"promoted WITHOUT labelled evidence ({labels}): accuracy not"
                              " verified; the guard watches it as labels arrive")  # fmt: skip
    elif exhausted:
        action, basis = "rollback", "window-ended"
        reasons = [f"{exhausted}: inconclusive, and a canary never wins by default", *pending]
    else:
        action, basis, reasons = "wait", "pending", pending
    return CanaryVerdict.model_construct(
        action=action,
        basis=basis,
        accuracy_verified=verified,
        stable_version=stable.version,
        canary_version=canary.version,
        reasons=reasons,
        checks=checks,
        evidence=EvidenceSizes.model_construct(
            stable_requests=stable.requests,
            canary_requests=canary.requests,
            stable_labels=stable.losses.n,
            canary_labels=canary.losses.n,
            canary_elapsed_s=canary.elapsed_s,
        ),
    )
