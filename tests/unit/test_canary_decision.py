"""Unit tests for the canary verdict: every rule has a scenario that only that rule decides."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pydantic import ValidationError

from tasks.decisions.canary import (
    CanaryPolicy,
    CanaryVerdict,
    EvidenceError,
    VersionEvidence,
    decide_canary,
    evidence_from_stats,
)

POLICY = CanaryPolicy()
STABLE_V, CANARY_V = 3, 4


def _predictions(seed: int, n: int = 300, scale: float = 1.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return (rng.lognormal(np.log(300_000), 0.35, n) * scale).tolist()


def _ape(seed: int, n: int = 200, spread: float = 0.10) -> list[float]:
    return np.abs(np.random.default_rng(seed).normal(0.0, spread, n)).tolist()


def _stable(**overrides: object) -> VersionEvidence:
    fields: dict[str, object] = dict(
        version=STABLE_V,
        requests=4000,
        errors=4,
        latency_ms_p50=60.0,
        latency_ms_p95=120.0,
        predictions=_predictions(seed=1),
        elapsed_s=600.0,
    )
    return VersionEvidence(**{**fields, **overrides})


def _canary(**overrides: object) -> VersionEvidence:
    fields: dict[str, object] = dict(
        version=CANARY_V,
        requests=400,
        errors=0,
        latency_ms_p50=62.0,
        latency_ms_p95=130.0,
        predictions=_predictions(seed=2),
        elapsed_s=600.0,
    )
    return VersionEvidence(**{**fields, **overrides})


def _decide(
    stable: VersionEvidence, canary: VersionEvidence, policy: CanaryPolicy = POLICY
) -> CanaryVerdict:
    verdict = decide_canary(stable, canary, policy)
    assert verdict.reasons, "every verdict must say why"
    for reason in verdict.reasons:
        assert re.search(r"\d", reason), f"reason without numbers: {reason!r}"
    return verdict


def _failed(verdict: CanaryVerdict) -> set[str]:
    return {c.name for c in verdict.checks if c.status == "failed"}


def _status(verdict: CanaryVerdict, name: str) -> str:
    return next(c.status for c in verdict.checks if c.name == name)


def test_healthy_canary_is_promoted() -> None:
    verdict = _decide(_stable(), _canary())
    assert verdict.action == "promote"
    assert all(c.status == "passed" for c in verdict.checks if c.required)
    assert (verdict.stable_version, verdict.canary_version) == (STABLE_V, CANARY_V)
    assert verdict.evidence.canary_requests == 400
    assert verdict.evidence.stable_predictions == 300


def test_high_error_rate_is_rolled_back_before_min_requests() -> None:
    verdict = _decide(_stable(), _canary(requests=10, errors=3))
    assert verdict.evidence.canary_requests < POLICY.min_requests
    assert verdict.action == "rollback"
    check = next(c for c in verdict.checks if c.name == "error_rate")
    assert check.status == "failed"
    assert "30.0%" in check.detail and "1.0%" in check.detail and check.detail in verdict.reasons


@pytest.mark.parametrize(("errors", "stable_errors"), [(0, 4), (1, 40)])
def test_few_requests_without_decisive_errors_wait(errors: int, stable_errors: int) -> None:
    # 1 error in 10 requests, against a 1% cap and a stable rate of 1%, has p ≈ 0.1: not decisive.
    verdict = _decide(_stable(errors=stable_errors), _canary(requests=10, errors=errors))
    assert verdict.action == "wait"
    assert any("10 of 50" in reason for reason in verdict.reasons)


def test_error_rate_excess_over_stable_is_rolled_back() -> None:
    # 0.9% is under the 1% absolute cap, but significantly worse than stable's 0.1%.
    verdict = _decide(_stable(requests=1000, errors=1), _canary(requests=1000, errors=9))
    assert verdict.action == "rollback"
    assert _failed(verdict) == {"error_rate_excess"}
    assert _status(verdict, "error_rate") == "passed"


def test_slow_canary_breaks_the_slo() -> None:
    # The ratio to stable (550/400 = 1.375) is within 1.5×; only the SLO catches it.
    stable = _stable(latency_ms_p50=200.0, latency_ms_p95=400.0)
    verdict = _decide(stable, _canary(latency_ms_p50=220.0, latency_ms_p95=550.0))
    assert verdict.action == "rollback"
    assert _failed(verdict) == {"latency_slo"}
    assert "550 ms" in verdict.reasons[0] and "500 ms" in verdict.reasons[0]


def test_canary_much_slower_than_stable_is_rolled_back_within_slo() -> None:
    verdict = _decide(_stable(latency_ms_p95=100.0), _canary(latency_ms_p95=200.0))
    assert verdict.action == "rollback"
    assert _failed(verdict) == {"latency_ratio"}
    assert "2.00×" in verdict.reasons[0]


def test_predictions_shifted_by_30_percent_are_rolled_back() -> None:
    verdict = _decide(_stable(), _canary(predictions=_predictions(seed=2, scale=1.3)))
    assert verdict.action == "rollback"
    assert _failed(verdict) == {"prediction_shift"}
    shift = next(c.observed for c in verdict.checks if c.name == "prediction_shift")
    assert shift is not None and 0.2 < shift < 0.4


def test_prediction_shift_justified_by_labeled_accuracy_is_not_rolled_back() -> None:
    stable = _stable(abs_pct_errors=_ape(seed=10))
    canary = _canary(predictions=_predictions(seed=2, scale=1.3), abs_pct_errors=_ape(seed=11))
    verdict = _decide(stable, canary)
    assert verdict.action == "promote"
    check = next(c for c in verdict.checks if c.name == "prediction_shift")
    assert check.status == "passed" and "justified" in check.detail


def test_worse_canary_on_labels_is_rolled_back() -> None:
    stable = _stable(abs_pct_errors=_ape(seed=10, spread=0.10))
    verdict = _decide(stable, _canary(abs_pct_errors=_ape(seed=11, spread=0.20)))
    assert verdict.action == "rollback"
    assert _failed(verdict) == {"accuracy"}
    assert "MAPE" in verdict.reasons[0]


def test_equal_canary_on_labels_is_promoted() -> None:
    stable = _stable(abs_pct_errors=_ape(seed=10))
    verdict = _decide(stable, _canary(abs_pct_errors=_ape(seed=11)))
    assert verdict.action == "promote"
    assert _status(verdict, "accuracy") == "passed"


def test_worse_but_not_significant_on_labels_waits() -> None:
    stable = _stable(abs_pct_errors=_ape(seed=10, n=30, spread=0.10))
    verdict = _decide(stable, _canary(abs_pct_errors=_ape(seed=11, n=30, spread=0.12)))
    assert _status(verdict, "accuracy") == "insufficient"
    assert verdict.action == "wait"


def test_ties_are_no_difference() -> None:
    # Identical values on both sides: KS and Mann-Whitney see no difference (p = 1).
    same = dict(predictions=[250_000.0] * 40, abs_pct_errors=[0.1] * 40)
    verdict = _decide(_stable(**same), _canary(**same))
    assert verdict.action == "promote"


def test_too_few_labels_do_not_block_unless_required() -> None:
    stable = _stable(abs_pct_errors=_ape(seed=10, n=10))
    canary = _canary(abs_pct_errors=_ape(seed=11, n=10))
    assert _decide(stable, canary).action == "promote"
    strict = CanaryPolicy(require_labels=True)
    assert _decide(stable, canary, strict).action == "wait"


def test_too_few_requests_wait() -> None:
    verdict = _decide(_stable(), _canary(requests=20))
    assert verdict.action == "wait"
    gated = ("error_rate", "error_rate_excess", "latency_slo", "latency_ratio")
    assert {name: _status(verdict, name) for name in gated} == dict.fromkeys(gated, "insufficient")
    assert any("20 of 50" in reason for reason in verdict.reasons)


@pytest.mark.parametrize(("requests", "elapsed_s"), [(5000, 600.0), (400, 3600.0)])
def test_exhausted_window_rolls_back_an_undecided_canary(requests: int, elapsed_s: float) -> None:
    # No predictions logged: the canary can never be judged, so it must not win by waiting.
    canary = _canary(requests=requests, elapsed_s=elapsed_s, predictions=[])
    verdict = _decide(_stable(), canary)
    assert verdict.action == "rollback"
    assert _failed(verdict) == set()
    assert "never wins by default" in verdict.reasons[0]
    within = _canary(requests=requests - 1, elapsed_s=elapsed_s - 1, predictions=[])
    assert _decide(_stable(), within).action == "wait"


def test_same_version_is_refused() -> None:
    with pytest.raises(ValueError, match="same version"):
        decide_canary(_stable(), _stable(), POLICY)


def test_evidence_from_stats_builds_evidence_with_safe_defaults() -> None:
    stats = {"requests": 100, "errors": 2, "latency_ms_p50": 40.0, "latency_ms_p95": 90.0}
    evidence = evidence_from_stats(CANARY_V, {**stats, "predictions": [1.0, 2.0]})
    assert evidence.error_rate == pytest.approx(0.02)
    assert evidence.predictions == (1.0, 2.0)
    assert evidence.abs_pct_errors == () and evidence.elapsed_s == 0.0
    assert evidence_from_stats(1, {**stats, "abs_pct_errors": None}).abs_pct_errors == ()
    idle = evidence_from_stats(1, {"requests": 0, "errors": 0})
    assert idle.latency_ms_p95 == 0.0


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ({"requests": 100, "latency_ms_p50": 1.0, "latency_ms_p95": 2.0}, "missing"),
        ({"requests": 100, "errors": 0}, "latency"),
        ({"requests": 1, "errors": 0, "latency_ms_p50": 1, "latency_ms_p95": 2, "p99": 3}, "p99"),
        ({"requests": 1, "errors": 2, "latency_ms_p50": 1.0, "latency_ms_p95": 2.0}, "exceed"),
        ({"requests": 0, "errors": 0, "predictions": [1.0, float("nan")]}, "finite"),
    ],
)
def test_evidence_from_stats_refuses_bad_statistics(stats: dict, message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        evidence_from_stats(CANARY_V, stats)


def test_policy_fields_are_constrained_and_described() -> None:
    assert all(field.description for field in CanaryPolicy.model_fields.values())
    with pytest.raises(ValidationError):
        CanaryPolicy(max_error_rate=0)
    with pytest.raises(ValidationError):
        CanaryPolicy(min_requests=100, max_requests=50)
