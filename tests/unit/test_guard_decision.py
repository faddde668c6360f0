"""The guard's verdict: roll back a champion shown worse than the one it replaced, never on a hunch."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.decisions.guard import GuardPolicy, decide_guard
from tasks.decisions.sequential import Moments

POLICY = GuardPolicy()


def _losses(n: int, scale: float, seed: int) -> Moments:
    return Moments.of(np.abs(np.random.default_rng(seed).normal(0, scale, n)))


def test_a_champion_shown_worse_is_rolled_back() -> None:
    verdict = decide_guard((3, _losses(3000, 1.0, 1)), (4, _losses(400, 1.5, 2)), 60.0, POLICY)
    assert verdict.action == "rollback" and verdict.lower > 0
    assert verdict.estimate == pytest.approx(0.5, abs=0.15)
    assert "worse than the champion it replaced" in verdict.reason


def test_a_champion_as_good_is_verified() -> None:
    verdict = decide_guard((3, _losses(5000, 1.0, 1)), (4, _losses(5000, 0.97, 2)), 60.0, POLICY)
    assert verdict.action == "verified" and verdict.upper < POLICY.max_loss_increase


def test_too_few_labels_keep_watching_then_expire_without_rolling_back() -> None:
    few = (4, _losses(10, 3.0, 2))
    assert decide_guard((3, _losses(3000, 1.0, 1)), few, 60.0, POLICY).action == "watch"
    expired = decide_guard((3, _losses(3000, 1.0, 1)), few, POLICY.window_s, POLICY)
    assert expired.action == "expired" and "champion kept" in expired.reason


def test_guard_false_rollbacks_stay_under_alpha_when_looking_every_batch() -> None:
    # 400 guards on identical versions, each looking after every batch of 20 labelled rows up to
    # 2,000: the share ever rolled back must stay under α.
    rng = np.random.default_rng(7)
    rolled = 0
    for _ in range(400):
        base = Moments.of(np.abs(rng.normal(0, 1, 3000)))
        seen = Moments()
        for _ in range(100):
            seen = seen.merge(Moments.of(np.abs(rng.normal(0, 1, 20))))
            if decide_guard((3, base), (4, seen), 1.0, POLICY).action == "rollback":
                rolled += 1
                break
    assert rolled / 400 <= POLICY.alpha
