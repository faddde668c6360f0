"""The five canary checks: each turns two versions' evidence into worse / not worse / unknown.

Each check builds two always-valid intervals on the canary's degradation: one at level α/5 that
must lie wholly beyond "no worse" to roll back, one at level β that must lie wholly inside the
margin to promote (see `canary` for what that guarantees, `sequential` for the maths).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.decisions.sequential import Interval, Moments, best_rho2, difference, one_sample

if TYPE_CHECKING:
    from tasks.decisions.canary import CanaryPolicy, VersionEvidence

CheckStatus = Literal["worse", "not-worse", "unknown"]
# Latency histogram bucket upper bounds in milliseconds: 0.1 ms to ~60 s, each 10% wider.
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(0.1 * 1.1**i for i in range(140))
P95_SHARE = 0.05  # p95 ≤ T exactly when at most 5% of requests are slower than T


class CheckResult(BaseModel):
    """One check's state, the intervals behind it and the sentence a person reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: CheckStatus
    estimate: float | None = Field(description="Point estimate of the degradation.")
    lower: float | None = Field(description="Lower end of the rollback interval (level α/5).")
    upper: float | None = Field(description="Upper end of the promotion interval (level β).")
    worse_above: float = Field(description="What the rollback interval must lie above.")
    margin: float = Field(description="What the promotion interval must lie below.")
    n: int = Field(description="Observations behind the intervals.")
    detail: str
    required: bool = True  # an unknown required check blocks promotion


@lru_cache(maxsize=64)
def _rho2(tuned_for: int, level: float) -> float:
    return best_rho2(tuned_for, level)


def _levels(p: CanaryPolicy) -> tuple[dict, dict]:
    low = {"alpha": p.check_alpha, "rho2": _rho2(p.tuned_for, p.check_alpha)}
    high = {"alpha": p.beta, "rho2": _rho2(p.tuned_for, p.beta)}
    return low, high


def _status(worse: bool, fine: bool) -> CheckStatus:
    return "worse" if worse else "not-worse" if fine else "unknown"


def _result(name: str, status: CheckStatus, low: Interval, high: Interval, **kw) -> CheckResult:
    finite = math.isfinite
    return CheckResult.model_construct(
        name=name,
        status=status,
        estimate=low.estimate if finite(low.estimate) else None,
        lower=low.lower if finite(low.lower) else None,
        upper=high.upper if finite(high.upper) else None,
        required=kw.pop("required", True),
        **kw,
    )


def _bounds(low: Interval, high: Interval, fmt: str) -> str:
    lo = "-inf" if not math.isfinite(low.lower) else format(low.lower, fmt)
    hi = "inf" if not math.isfinite(high.upper) else format(high.upper, fmt)
    return f"[{lo}, {hi}]"


def error_rate_check(s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy, _) -> CheckResult:
    a, b = _levels(p)
    errors = Moments.of_counts(c.errors, c.requests)
    low, high = one_sample(errors, binary=True, **a), one_sample(errors, binary=True, **b)
    cap = p.max_error_rate
    status = _status(low.lower > cap, high.upper <= cap)
    detail = f"canary error rate {c.error_rate:.2%} ({c.errors}/{c.requests}),"
    detail += f" bounds {_bounds(low, high, '.2%')} vs cap {cap:.2%}: {status}"
    return _result(
        "error_rate", status, low, high, worse_above=cap, margin=cap, n=c.requests, detail=detail
    )


def error_excess_check(s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy, _) -> CheckResult:
    a, b = _levels(p)
    mc, ms = Moments.of_counts(c.errors, c.requests), Moments.of_counts(s.errors, s.requests)
    low = difference(mc, ms, binary=True, **a)
    high = difference(mc, ms, binary=True, **b)
    cap = p.max_error_rate_excess
    status = _status(low.lower > 0, high.upper < cap)
    detail = f"error rate canary {c.error_rate:.2%} vs stable {s.error_rate:.2%}: excess bounds"
    detail += f" {_bounds(low, high, '+.2%')}, margin +{cap:.2%}: {status}"
    return _result(
        "error_rate_excess", status, low, high, worse_above=0.0, margin=cap, n=low.t, detail=detail
    )


def exceedances(counts: tuple[int, ...], threshold_ms: float) -> float:
    """Requests slower than `threshold_ms`, interpolating inside the bucket it falls in."""
    slower = 0.0
    for index, count in enumerate(counts):
        low = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
        high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else math.inf
        if count and high > threshold_ms:
            inside = (
                1.0
                if low >= threshold_ms or math.isinf(high)
                else ((high - threshold_ms) / (high - low))
            )
            slower += count * inside
    return slower


def _p95(counts: tuple[int, ...]) -> float:
    """The 95th percentile of a histogram, interpolated inside its bucket."""
    rank, seen = (1 - P95_SHARE) * sum(counts), 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            high = LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return LATENCY_BOUNDS_MS[-1]


def _latency_limit(s: VersionEvidence, p: CanaryPolicy) -> tuple[float, str]:
    slo = p.latency_p95_slo_ms
    if sum(s.latency_counts) < p.min_samples:
        return slo, f"the {slo:.0f} ms SLO"
    stable_p95 = _p95(s.latency_counts)
    if p.max_p95_ratio * stable_p95 < slo:
        return p.max_p95_ratio * stable_p95, f"{p.max_p95_ratio:g}× stable p95 {stable_p95:.0f} ms"
    return slo, f"the {slo:.0f} ms SLO"


def latency_check(s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy, _) -> CheckResult:
    a, b = _levels(p)
    limit, source = _latency_limit(s, p)
    answered = sum(c.latency_counts)
    slow = round(exceedances(c.latency_counts, limit))
    share = Moments.of_counts(min(slow, answered), answered)
    low, high = one_sample(share, binary=True, **a), one_sample(share, binary=True, **b)
    status = _status(low.lower > P95_SHARE, answered > 0 and high.upper < P95_SHARE)
    detail = f"{share.mean:.1%} of {answered} canary requests slower than {limit:.0f} ms"
    detail += f" ({source}); bounds {_bounds(low, high, '.1%')}, p95 within it needs"
    detail += f" < {P95_SHARE:.0%}: {status}"
    return _result(
        "latency_p95",
        status,
        low,
        high,
        worse_above=P95_SHARE,
        margin=P95_SHARE,
        n=answered,
        detail=detail,
    )


def accuracy_check(s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy) -> CheckResult:
    """Labelled loss: worse if above stable's, not worse if below (1 + margin) × stable's."""
    a, b = _levels(p)
    nc, ns, need, margin = c.losses.n, s.losses.n, p.min_samples, p.max_loss_increase
    if min(nc, ns) < need:
        detail = f"{nc} canary / {ns} stable labelled rows, {need} each needed: accuracy unknown"
        none = Interval.model_construct(estimate=math.nan, lower=-math.inf, upper=math.inf, t=0)
        return _result(
            "accuracy",
            "unknown",
            none,
            none,
            worse_above=0.0,
            margin=margin,
            n=nc + ns,
            detail=detail,
            required=p.require_labels,
        )
    base = s.losses.mean if s.losses.mean > 0 else 1.0  # relative to stable's mean loss
    low = difference(c.losses, s.losses, **a)
    high = difference(c.losses, s.losses, weight=1 + margin, **b)
    status = _status(low.lower > 0, high.upper < 0)
    rel_low, rel_high = low.scaled(base), high.scaled(base, shift=margin)
    detail = f"mean {c.loss_name} canary {c.losses.mean:.4g} vs stable {s.losses.mean:.4g}"
    detail += f" ({rel_low.estimate:+.1%}; bounds {_bounds(rel_low, rel_high, '+.1%')},"
    detail += f" margin +{margin:.0%}, n={nc}/{ns}): {status}"
    return _result(
        "accuracy",
        status,
        rel_low,
        rel_high,
        worse_above=0.0,
        margin=margin,
        n=nc + ns,
        detail=detail,
        required=p.require_labels,
    )


def _watched(s: VersionEvidence, c: VersionEvidence) -> list[tuple[str, Moments, Moments]]:
    """What the shift check compares: (what, canary, stable) for each watched mean."""
    if s.class_probabilities and len(s.class_probabilities) == len(c.class_probabilities):
        pairs = zip(c.class_probabilities, s.class_probabilities, strict=True)
        return [(f"class {i} probability", cm, sm) for i, (cm, sm) in enumerate(pairs)]
    return [("prediction mean", c.predictions, s.predictions)]


def shift_check(
    s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy, accuracy: CheckResult
) -> CheckResult:
    """Prediction mean in stable SDs: the proxy for accuracy when no labels arrive.

    A classifier of three or more classes has one mean per class probability: the check's α is
    split evenly over them (rolled back when any class shifted), and each must be shown inside
    the margin at β to pass (a worse canary passes only if its shifted class's bound does).
    A shift labelled loss vouches for is not held against the canary (a model retrained on
    drifted data is meant to move); while labels are arriving, a shift waits for their verdict
    rather than rolling back on the proxy; with no labels at all, the shift decides.
    """
    watched = _watched(s, c)
    a, b = _levels(p)
    if len(watched) > 1:
        level = p.check_alpha / len(watched)
        a = {"alpha": level, "rho2": _rho2(p.tuned_for, level)}
    m, justified = p.max_prediction_shift, accuracy.status == "not-worse"
    labels_flowing = c.losses.n > 0 and accuracy.status == "unknown"
    looks = []
    for what, canary, stable in watched:
        sd = math.sqrt(stable.variance) or 1.0
        low = difference(canary, stable, **a).scaled(sd)
        high = difference(canary, stable, **b).scaled(sd)
        enough = min(canary.n, stable.n) >= p.min_samples
        shifted = enough and (low.lower > m or low.upper < -m)
        inside = enough and -m < high.lower and high.upper < m
        looks.append((shifted, inside, what, low, high, canary.n, stable.n))
    shifted, inside = any(look[0] for look in looks), all(look[1] for look in looks)
    # The look a person reads: a shifted one, else the farthest from no shift.
    _, _, what, low, high, nc, ns = max(looks, key=lambda x: (x[0], abs(x[3].estimate)))
    status = _status(shifted and not justified and not labels_flowing, inside)
    detail = f"{what} shift {low.estimate:+.2f} SD (bounds {_bounds(low, high, '+.2f')},"
    detail += f" margin ±{m:g} SD, n={nc}/{ns})"
    if len(looks) > 1:
        detail += f" (the largest of {len(looks)} classes)"
    if shifted and justified:
        status, detail = "not-worse", f"{detail}: shifted, but labelled loss is shown not worse"
    elif shifted and labels_flowing:
        status, detail = "unknown", f"{detail}: shifted; waiting for the labelled loss to judge it"
    else:
        detail = f"{detail}: {status}"
    return _result(
        "prediction_shift",
        status,
        low,
        high,
        worse_above=m,
        margin=m,
        n=low.t,
        detail=detail,
        required=not justified,
    )


def _accuracy(s, c, p, accuracy: CheckResult) -> CheckResult:
    return accuracy


Check = Callable[["VersionEvidence", "VersionEvidence", "CanaryPolicy", CheckResult], CheckResult]
CHECKS: tuple[Check, ...] = (
    error_rate_check,
    error_excess_check,
    latency_check,
    _accuracy,
    shift_check,
)
