# Frozen copy of tasks/decisions/canary.py at commit c7955e7 (main before issue 11), kept only so
# bench/canary_stats.py can run the old verdict side by side with the new one. Do not import it
# from the product.
"""The canary verdict: promote, roll back or wait, decided from stable-vs-canary evidence.

Pure: no Prefect, no I/O. A task gathers each version's serving statistics, builds
`VersionEvidence` (see `evidence_from_stats`) and calls `decide_canary`.

Statistics, chosen so the same evidence always yields the same verdict (no random resampling):
- error rate: one-sided binomial test against the absolute maximum (decisive from the first
  requests), one-sided Fisher exact test against the stable version's rate;
- labeled accuracy: one-sided Mann-Whitney U on absolute percentage errors. Errors are skewed and
  outlier-prone, so a rank test is more robust than a t-test, and unlike a bootstrap it needs no
  seed. Ties get mid-ranks (scipy's tie correction); a degenerate test (NaN p) counts as p = 1;
- predictions: two-sample Kolmogorov-Smirnov plus an effect size (relative median shift or the KS
  statistic), so neither a tiny shift on a large sample nor noise on a small one rolls back.
A failure needs significance *and* a breach of the threshold; a pass needs enough evidence and a
point estimate within the threshold; anything in between is "insufficient" and the canary waits
until the window runs out, then it is rolled back: a canary never wins by default.
Each call is one look at the data; polling repeatedly raises the chance of a false rollback (the
safe direction), so lower `significance` if the analysis polls many times.
"""

from __future__ import annotations

import math
from statistics import fmean, median
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CheckStatus = Literal["passed", "failed", "insufficient"]
# NaN or infinity is refused everywhere: missing data is left out, never smuggled in as NaN.
_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _stats():
    from scipy import stats  # never pays for it

    return stats


class EvidenceError(ValueError):
    """Serving statistics are missing a key, carry an unknown one, or are inconsistent."""


class VersionEvidence(BaseModel):
    """What one version did while stable and canary shared live traffic."""

    model_config = _FROZEN

    version: int = Field(ge=0, description="Registry version number.")
    requests: int = Field(ge=0, description="Requests served in the observation window.")
    errors: int = Field(ge=0, description="Requests that failed (5xx, exceptions, timeouts).")
    latency_ms_p50: float = Field(ge=0, description="Median latency in milliseconds.")
    latency_ms_p95: float = Field(ge=0, description="95th-percentile latency in milliseconds.")
    predictions: tuple[float, ...] = Field((), description="Bounded sample of recent predictions.")
    abs_pct_errors: tuple[float, ...] = Field(
        (), description="|y - ŷ| / |y| as fractions, from labels that arrived later; may be empty."
    )
    elapsed_s: float = Field(0.0, ge=0, description="Seconds since this version took traffic.")

    @model_validator(mode="after")
    def _consistent(self) -> VersionEvidence:
        if self.errors > self.requests:
            raise ValueError(f"errors {self.errors} exceed requests {self.requests}")
        if self.latency_ms_p50 > self.latency_ms_p95:
            raise ValueError(f"p50 {self.latency_ms_p50} ms is above p95 {self.latency_ms_p95} ms")
        if any(v < 0 for v in self.abs_pct_errors):
            raise ValueError("absolute percentage errors cannot be negative")
        return self

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class CanaryPolicy(BaseModel):
    """Thresholds for judging a canary against the stable version."""

    model_config = _FROZEN

    min_requests: int = Field(50, ge=1, description="Canary requests needed before a promotion.")
    max_error_rate: float = Field(0.01, gt=0, lt=1, description="Absolute canary error-rate cap.")
    max_error_rate_excess: float = Field(
        0.005, ge=0, lt=1, description="How far the canary error rate may exceed stable's."
    )
    latency_p95_slo_ms: float = Field(500.0, gt=0, description="p95 latency SLO in milliseconds.")
    max_p95_ratio: float = Field(1.5, ge=1, description="Max canary p95 / stable p95.")
    min_prediction_samples: int = Field(30, ge=2, description="Predictions needed per version.")
    max_median_shift: float = Field(0.10, gt=0, description="Max relative shift of the median.")
    max_ks_statistic: float = Field(0.30, gt=0, le=1, description="Max KS distance D.")
    min_labeled_samples: int = Field(30, ge=2, description="Labeled errors needed per version.")
    max_mape_degradation: float = Field(
        0.10, ge=0, description="Allowed relative MAPE increase over stable (0.1 = +10%)."
    )
    require_labels: bool = Field(False, description="Wait for labeled evidence before promoting.")
    significance: float = Field(0.05, gt=0, lt=0.5, description="Alpha of every one-sided test.")
    max_requests: int = Field(5000, ge=1, description="Undecided after this many → roll back.")
    max_window_s: float = Field(3600.0, gt=0, description="Undecided after this long → roll back.")

    @model_validator(mode="after")
    def _window_after_minimum(self) -> CanaryPolicy:
        if self.max_requests < self.min_requests:
            raise ValueError("max_requests must be at least min_requests")
        return self


class CheckResult(BaseModel):
    """One check's outcome; `detail` is the sentence a person reads."""

    model_config = _FROZEN

    name: str
    status: CheckStatus
    observed: float | None
    threshold: float | None
    detail: str
    required: bool = True  # an insufficient required check blocks promotion


class EvidenceSizes(BaseModel):
    """How much evidence the verdict rests on."""

    model_config = _FROZEN

    stable_requests: int
    canary_requests: int
    stable_predictions: int
    canary_predictions: int
    stable_labels: int
    canary_labels: int
    canary_elapsed_s: float


class CanaryVerdict(BaseModel):
    """The decision, the sentences that justify it, and every check behind it."""

    model_config = _FROZEN

    action: Literal["promote", "rollback", "wait"]
    stable_version: int
    canary_version: int
    reasons: list[str] = Field(min_length=1)
    checks: list[CheckResult]
    evidence: EvidenceSizes


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _check(
    name: str,
    status: CheckStatus,
    detail: str,
    observed: float | None = None,
    threshold: float | None = None,
    required: bool = True,
) -> CheckResult:
    return CheckResult(
        name=name,
        status=status,
        observed=observed,
        threshold=threshold,
        detail=detail,
        required=required,
    )


def _error_rate_check(c: VersionEvidence, p: CanaryPolicy) -> CheckResult:
    # The binomial test makes a bad canary decisive long before min_requests: 3 errors in the
    # first 10 requests has p ≈ 1e-4 against a 1% cap.
    seen = f"canary error rate {_pct(c.error_rate)} ({c.errors}/{c.requests})"
    cap, alpha = p.max_error_rate, p.significance
    pval = _stats().binomtest(c.errors, c.requests, cap, "greater").pvalue if c.requests else 1.0
    if pval < alpha:
        status: CheckStatus = "failed"
        detail = f"{seen} > {_pct(cap)} max (binomial p={pval:.2g} < {alpha})"
    elif c.requests >= p.min_requests and c.error_rate <= cap:
        status, detail = "passed", f"{seen} ≤ {_pct(cap)} max"
    else:
        status = "insufficient"
        detail = f"{seen} vs {_pct(cap)} max not yet conclusive (binomial p={pval:.2g},"
        detail += f" {c.requests} of {p.min_requests} requests)"
    return _check("error_rate", status, detail, c.error_rate, cap)


def _error_excess_check(s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy) -> CheckResult:
    excess, cap, alpha = c.error_rate - s.error_rate, p.max_error_rate_excess, p.significance
    seen = f"canary error rate {_pct(c.error_rate)} vs stable {_pct(s.error_rate)}"
    table = [[c.errors, c.requests - c.errors], [s.errors, s.requests - s.errors]]
    pval = _stats().fisher_exact(table, alternative="greater").pvalue if s.requests else 1.0
    if s.requests and pval < alpha and excess > cap:
        status: CheckStatus = "failed"
        detail = f"{seen}: excess {_pct(excess)} > {_pct(cap)} max (Fisher p={pval:.2g} < {alpha})"
    elif s.requests and c.requests >= p.min_requests and excess <= cap:
        status, detail = "passed", f"{seen}: excess {_pct(excess)} ≤ {_pct(cap)} max"
    else:
        status = "insufficient"
        detail = f"{seen}: excess {_pct(excess)} vs {_pct(cap)} max not yet conclusive"
        detail += f" (Fisher p={pval:.2g}, {c.requests}/{s.requests} canary/stable requests)"
    return _check("error_rate_excess", status, detail, excess, cap)


def _latency_slo_check(c: VersionEvidence, p: CanaryPolicy) -> CheckResult:
    # A p95 over a handful of requests is about their maximum, and a percentile cannot be tested
    # without the raw latencies, so latency is judged only from min_requests on.
    slo, p95 = p.latency_p95_slo_ms, c.latency_ms_p95
    seen = f"canary p95 latency {p95:.0f} ms"
    if c.requests < p.min_requests:
        detail = f"{seen} vs {slo:.0f} ms SLO not judged yet ({c.requests} of {p.min_requests}"
        return _check("latency_slo", "insufficient", f"{detail} requests)", p95, slo)
    if p95 > slo:
        return _check("latency_slo", "failed", f"{seen} > {slo:.0f} ms SLO", p95, slo)
    return _check("latency_slo", "passed", f"{seen} ≤ {slo:.0f} ms SLO", p95, slo)


def _latency_ratio_check(s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy) -> CheckResult:
    cap, cp95, sp95 = p.max_p95_ratio, c.latency_ms_p95, s.latency_ms_p95
    if min(c.requests, s.requests) < p.min_requests or sp95 <= 0:
        detail = f"p95 ratio not judged yet: canary {cp95:.0f} ms over {c.requests} requests,"
        detail += f" stable {sp95:.0f} ms over {s.requests}; {p.min_requests} needed each"
        return _check("latency_ratio", "insufficient", detail, None, cap)
    ratio = cp95 / sp95
    detail = f"canary p95 {cp95:.0f} ms is {ratio:.2f}× stable {sp95:.0f} ms (max {cap:.2f}×)"
    return _check("latency_ratio", "failed" if ratio > cap else "passed", detail, ratio, cap)


def _accuracy_check(s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy) -> CheckResult:
    nc, ns = len(c.abs_pct_errors), len(s.abs_pct_errors)
    if min(nc, ns) < p.min_labeled_samples:
        detail = f"only {nc} canary / {ns} stable labeled errors, need {p.min_labeled_samples}"
        detail += " each to compare accuracy"
        return _check("accuracy", "insufficient", detail, required=p.require_labels)
    mape_c, mape_s = fmean(c.abs_pct_errors), fmean(s.abs_pct_errors)
    limit = mape_s * (1 + p.max_mape_degradation)
    pval = _stats().mannwhitneyu(c.abs_pct_errors, s.abs_pct_errors, alternative="greater").pvalue
    pval = 1.0 if math.isnan(pval) else float(pval)
    seen = f"canary MAPE {_pct(mape_c)} vs stable {_pct(mape_s)} (limit {_pct(limit)}"
    seen += f" = +{p.max_mape_degradation:.0%}; Mann-Whitney p={pval:.2g}, n={nc}/{ns})"
    if pval < p.significance and mape_c > limit:
        status: CheckStatus = "failed"
        detail = f"{seen}: significantly worse (p < {p.significance})"
    elif mape_c <= limit:
        status, detail = "passed", f"{seen}: within the allowed degradation"
    else:
        status, detail = "insufficient", f"{seen}: above the limit but not yet significant"
    return _check("accuracy", status, detail, mape_c, limit)


def _relative_shift(new: float, old: float) -> float:
    if old == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - old) / abs(old)


def _shift_check(
    s: VersionEvidence, c: VersionEvidence, p: CanaryPolicy, accuracy: CheckResult
) -> CheckResult:
    # Traffic is split at random, so both versions see comparable inputs and their prediction
    # distributions should match; a shift is acceptable only when labeled accuracy vouches for it.
    justified, cap = accuracy.status == "passed", p.max_median_shift
    nc, ns, need = len(c.predictions), len(s.predictions), p.min_prediction_samples
    if min(nc, ns) < need:
        detail = f"only {nc} canary / {ns} stable predictions, need {need} each to compare"
        return _check("prediction_shift", "insufficient", detail, None, cap, not justified)
    shift = _relative_shift(median(c.predictions), median(s.predictions))
    ks = _stats().ks_2samp(c.predictions, s.predictions)
    pval = 1.0 if math.isnan(ks.pvalue) else float(ks.pvalue)
    seen = f"prediction median shift {shift:+.1%} (max ±{cap:.0%}),"
    seen += f" KS D={ks.statistic:.2f} (max {p.max_ks_statistic:.2f}), p={pval:.2g}, n={nc}/{ns}"
    large = abs(shift) > cap or ks.statistic > p.max_ks_statistic
    if not (pval < p.significance and large):
        status: CheckStatus = "passed"
        detail = f"{seen}: distributions agree"
    elif justified:
        status, detail = "passed", f"{seen}: shifted, but justified by passing labeled accuracy"
    else:
        status = "failed"
        detail = f"{seen}: significant shift (p < {p.significance}) and no passing labeled"
        detail += " accuracy check to justify it"
    return _check("prediction_shift", status, detail, shift, cap)


def _window_exhausted(c: VersionEvidence, p: CanaryPolicy) -> str | None:
    if c.requests >= p.max_requests:
        return f"canary undecided after {c.requests} requests (max {p.max_requests})"
    if c.elapsed_s >= p.max_window_s:
        return f"canary undecided after {c.elapsed_s:.0f} s (max {p.max_window_s:.0f} s)"
    return None


def decide_canary(
    stable: VersionEvidence, canary: VersionEvidence, policy: CanaryPolicy
) -> CanaryVerdict:
    """Roll back on any failed check, promote when every required check passed, else wait
    (or roll back once the observation window is spent)."""
    if stable.version == canary.version:
        raise ValueError(f"stable and canary are the same version v{canary.version}")
    accuracy = _accuracy_check(stable, canary, policy)
    checks = [
        _error_rate_check(canary, policy),
        _error_excess_check(stable, canary, policy),
        _latency_slo_check(canary, policy),
        _latency_ratio_check(stable, canary, policy),
        accuracy,
        _shift_check(stable, canary, policy, accuracy),
    ]
    failed = [ch.detail for ch in checks if ch.status == "failed"]
    pending = [ch.detail for ch in checks if ch.status == "insufficient" and ch.required]
    exhausted = _window_exhausted(canary, policy)
    if failed:
        action, reasons = "rollback", failed
    elif not pending:
        action, reasons = "promote", [ch.detail for ch in checks]
    elif exhausted:
        action, reasons = "rollback", [f"{exhausted}; a canary never wins by default", *pending]
    else:
        action, reasons = "wait", pending
    return CanaryVerdict(
        action=action,
        stable_version=stable.version,
        canary_version=canary.version,
        reasons=reasons,
        checks=checks,
        evidence=_sizes(stable, canary),
    )


def _sizes(stable: VersionEvidence, canary: VersionEvidence) -> EvidenceSizes:
    return EvidenceSizes(
        stable_requests=stable.requests,
        canary_requests=canary.requests,
        stable_predictions=len(stable.predictions),
        canary_predictions=len(canary.predictions),
        stable_labels=len(stable.abs_pct_errors),
        canary_labels=len(canary.abs_pct_errors),
        canary_elapsed_s=canary.elapsed_s,
    )


_REQUIRED = ("requests", "errors")
_OPTIONAL = ("latency_ms_p50", "latency_ms_p95", "predictions", "abs_pct_errors", "elapsed_s")


def evidence_from_stats(version: int, stats: dict[str, Any]) -> VersionEvidence:
    """Build evidence from serving statistics.

    A key may be left out only where its default cannot make a bad canary look good: missing
    predictions or labels shrink the evidence (the verdict waits), but a missing error count, or a
    missing latency for a version that served requests, raises `EvidenceError`. Unknown keys raise
    too, so a misspelt key is not silently ignored. `None` counts as missing.
    """
    given = {k: v for k, v in stats.items() if v is not None}
    unknown = sorted(set(given) - {*_REQUIRED, *_OPTIONAL})
    if unknown:
        raise EvidenceError(f"v{version}: unknown statistics {unknown}")
    missing = [k for k in _REQUIRED if k not in given]
    if given.get("requests") and not {"latency_ms_p50", "latency_ms_p95"} <= set(given):
        missing.append("latency_ms_p50/latency_ms_p95")
    if missing:
        raise EvidenceError(f"v{version}: missing statistics {missing}")
    if not given["requests"]:  # no traffic, no latency to report
        given = {"latency_ms_p50": 0.0, "latency_ms_p95": 0.0, **given}
    try:
        return VersionEvidence(version=version, **given)
    except ValueError as exc:
        raise EvidenceError(f"v{version}: inconsistent statistics: {exc}") from exc
