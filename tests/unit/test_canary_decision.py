"""The canary verdict: each check decides its own scenario, and "not yet known" never promotes."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pydantic import ValidationError

from tasks.decisions.canary import (
    LATENCY_BOUNDS_MS,
    CanaryPolicy,
    CanaryVerdict,
    VersionEvidence,
    decide_canary,
)
from tasks.decisions.sequential import Moments
from tasks.release.records import VerdictRecord, explain, replay

POLICY = CanaryPolicy()
LABELLED = CanaryPolicy(require_labels=True)
STABLE_V, CANARY_V = 3, 4


def _evidence(version: int, requests: int, seed: int, **kind: float) -> VersionEvidence:
    """`requests` answered requests: latency (ms), prices, and labels for `labelled` of them."""
    rng = np.random.default_rng(seed)
    errors = int(kind.get("errors", 0.001) * requests)
    latency = rng.lognormal(np.log(20 * kind.get("slower", 1.0)), 0.5, requests - errors)
    counts = np.bincount(np.searchsorted(LATENCY_BOUNDS_MS, latency), minlength=141)
    truth = rng.lognormal(12, 0.4, requests)
    noise = rng.normal(0, 0.1, requests) * kind.get("worse", 1.0)
    predictions = truth * np.exp(noise) * (1 + kind.get("shift", 0.0))
    labelled = int(kind.get("labelled", 0) * requests)
    return VersionEvidence(
        version=version,
        requests=requests,
        errors=errors,
        latency_counts=tuple(int(c) for c in counts),
        predictions=Moments.of(predictions),
        losses=Moments.of(np.abs(predictions - truth)[:labelled]),
        elapsed_s=300.0,
    )


def _decide(stable, canary, policy: CanaryPolicy = POLICY) -> CanaryVerdict:
    verdict = decide_canary(stable, canary, policy)
    assert verdict.reasons and all(re.search(r"\d", r) for r in verdict.reasons)
    return verdict


def _status(verdict: CanaryVerdict, name: str) -> str:
    return next(c.status for c in verdict.checks if c.name == name)


def _pair(canary_requests: int = 3000, **canary_kind: float):
    labelled = canary_kind.get("labelled", 0)
    stable = _evidence(STABLE_V, canary_requests * 9, seed=1, labelled=labelled)
    return stable, _evidence(CANARY_V, canary_requests, seed=2, **canary_kind)


def test_a_healthy_canary_with_labels_is_promoted_with_accuracy_verified() -> None:
    verdict = _decide(*_pair(labelled=1.0), LABELLED)
    assert (verdict.action, verdict.basis, verdict.accuracy_verified) == (
        "promote",
        "evidence",
        True,
    )
    assert all(c.status == "not-worse" for c in verdict.checks)


def test_a_canary_without_labels_is_never_promoted_as_accuracy_verified() -> None:
    verdict = _decide(*_pair(labelled=0.0))
    assert verdict.action == "promote" and not verdict.accuracy_verified
    assert "WITHOUT labelled evidence" in verdict.reasons[0]
    assert _status(verdict, "accuracy") == "unknown"
    strict = _decide(*_pair(labelled=0.0), LABELLED)
    assert strict.action == "wait" and not strict.accuracy_verified


def test_worse_labelled_loss_rolls_back() -> None:
    verdict = _decide(*_pair(labelled=1.0, worse=1.4))
    assert verdict.action == "rollback" and _status(verdict, "accuracy") == "worse"
    accuracy = next(c for c in verdict.checks if c.name == "accuracy")
    assert accuracy.lower > 0 and accuracy.estimate == pytest.approx(0.4, abs=0.1)


def test_not_significantly_worse_is_unknown_not_a_pass() -> None:
    # +8% loss on 100 labelled canary rows: inside neither bound; the verdict must wait.
    verdict = _decide(*_pair(canary_requests=100, labelled=1.0, worse=1.08), LABELLED)
    assert _status(verdict, "accuracy") == "unknown"
    assert verdict.action == "wait"


def test_a_high_error_rate_rolls_back() -> None:
    verdict = _decide(*_pair(errors=0.05))
    assert verdict.action == "rollback"
    assert {"error_rate", "error_rate_excess"} <= {
        c.name for c in verdict.checks if c.status == "worse"
    }


def test_a_slow_canary_rolls_back_on_p95() -> None:
    verdict = _decide(*_pair(slower=3.0))
    assert verdict.action == "rollback" and _status(verdict, "latency_p95") == "worse"


def test_a_prediction_shift_rolls_back_unless_labels_vouch_for_it() -> None:
    unlabelled = _decide(*_pair(shift=0.5))
    assert unlabelled.action == "rollback" and _status(unlabelled, "prediction_shift") == "worse"
    # While labels are arriving, the proxy waits for their verdict instead of rolling back.
    waiting = _decide(*_pair(shift=0.5, labelled=0.005))
    assert waiting.action == "wait" and _status(waiting, "prediction_shift") == "unknown"
    assert "waiting for the labelled loss" in " ".join(waiting.reasons)
    # A retrained model may move its predictions; labelled loss shown not worse justifies it.
    stable = _evidence(STABLE_V, 27000, seed=1, labelled=1.0, worse=1.5)
    canary = _evidence(CANARY_V, 3000, seed=2, labelled=1.0, shift=0.02)
    justified = _decide(stable, canary)
    assert _status(justified, "accuracy") == "not-worse" and justified.action == "promote"


def test_nothing_is_promoted_before_min_requests() -> None:
    verdict = _decide(*_pair(canary_requests=40))
    assert verdict.action == "wait"
    assert any("40 of 50 requests" in r for r in verdict.reasons)


def test_an_undecided_window_rolls_back_as_inconclusive() -> None:
    stable, canary = _pair(labelled=0.0)
    ended = canary.model_copy(update={"elapsed_s": 4000.0})
    verdict = _decide(stable, ended, LABELLED)
    assert (verdict.action, verdict.basis) == ("rollback", "window-ended")
    assert "inconclusive" in verdict.reasons[0]


def test_every_check_states_its_interval_and_size() -> None:
    verdict = _decide(*_pair(labelled=1.0))
    for check in verdict.checks:
        assert check.status in {"worse", "not-worse", "unknown"}
        assert check.n > 0 and check.lower is not None and check.upper is not None


@pytest.mark.parametrize(
    "bad",
    [{"errors": 11, "requests": 10}, {"latency_counts": (1, 2, 3)}, {"requests": -1}],
)
def test_inconsistent_evidence_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        VersionEvidence(**{"version": 1, "requests": 10, "errors": 0, **bad})


def test_same_version_on_both_arms_is_refused() -> None:
    stable, _ = _pair()
    with pytest.raises(ValueError, match="same version"):
        decide_canary(stable, stable, POLICY)


def test_a_stored_record_replays_to_the_same_verdict() -> None:
    stable, canary = _pair(labelled=1.0, worse=1.4)
    verdict = decide_canary(stable, canary, POLICY)
    record = VerdictRecord(
        model="m", decided_at="2026-12-04T10:00:00Z", window_since="2026-12-04T09:55:00Z",
        stable=stable, canary=canary, policy=POLICY, verdict=verdict,
    )  # fmt: skip
    stored = VerdictRecord.model_validate_json(record.model_dump_json())
    assert replay(stored).model_dump() == stored.verdict.model_dump() == verdict.model_dump()
    text = explain(stored)
    assert "ROLLBACK (evidence)" in text and "accuracy" in text and "α=0.05" in text
