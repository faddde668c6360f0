"""The canary's statistics against closed forms, published values and their stated error rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.decisions.sequential import (
    Moments,
    best_rho2,
    difference,
    fixed_horizon_n,
    margin,
    one_sample,
)


@pytest.mark.parametrize(
    ("t", "alpha", "rho2"), [(10, 0.05, 0.01), (1000, 0.01, 0.002), (5, 0.2, 1.0)]
)
def test_margin_is_where_the_gaussian_mixture_martingale_reaches_one_over_alpha(
    t: int, alpha: float, rho2: float
) -> None:
    # Robbins' normal mixture: M_t = (1 + tρ²)^(-1/2) exp(ρ² S² / (2(1 + tρ²))); Ville's inequality
    # bounds P(sup M_t >= 1/α) by α, so the boundary must be exactly where M_t = 1/α.
    s = t * margin(t, alpha, rho2)
    mixture = math.exp(rho2 * s * s / (2 * (1 + t * rho2))) / math.sqrt(1 + t * rho2)
    assert mixture == pytest.approx(1 / alpha, rel=1e-9)


def test_best_rho2_minimises_the_margin_near_its_target_time() -> None:
    rho2 = best_rho2(500, 0.05)
    assert rho2 == pytest.approx((-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 500)
    widths = {scale: margin(500, 0.05, rho2 * scale) for scale in (0.25, 0.5, 1, 2, 4)}
    assert min(widths, key=widths.get) == 1


@pytest.mark.parametrize(
    ("effect", "alpha", "beta", "expected"),
    # n = ((z_{1-α} + z_{1-β}) σ/δ)²: 1.959964 + 0.841621 (two-sided 5%, 80% power) → 7.849;
    # 1.644854 + 1.644854 (5%/5%) at δ = σ/2 → 43.29.
    [(1.0, 0.025, 0.2, 7.849), (0.5, 0.05, 0.05, 43.29)],
)
def test_fixed_horizon_n_matches_the_textbook_values(effect, alpha, beta, expected) -> None:
    assert fixed_horizon_n(effect, 1.0, alpha, beta) == pytest.approx(expected, abs=0.01)


def test_moments_merge_like_one_sample() -> None:
    values = np.random.default_rng(3).lognormal(12, 0.4, 1001)
    merged = Moments.of(values[:400]).merge(Moments.of(values[400:]))
    assert merged.n == 1001
    assert merged.mean == pytest.approx(values.mean(), rel=1e-12)
    assert merged.variance == pytest.approx(values.var(ddof=1), rel=1e-9)


def test_binary_interval_is_never_certain_without_errors() -> None:
    # Zero errors in 50 requests must not claim a rate known to be exactly 0.
    interval = one_sample(
        Moments.of_counts(0, 50), alpha=0.01, rho2=best_rho2(2000, 0.01), binary=True
    )
    assert interval.upper > 0.02


def test_the_sequence_keeps_alpha_under_a_look_at_every_observation() -> None:
    # 2,000 random walks of 3,000 observations with mean 0, looked at after every one of them:
    # the confidence sequence may miss 0 at some look in at most α of them; a fixed-sample
    # z-interval used the same way misses far more often (the reason this module exists).
    rng = np.random.default_rng(11)
    alpha, n = 0.05, 3000
    steps = rng.standard_normal((2000, n))
    t = np.arange(1, n + 1)
    means = steps.cumsum(axis=1) / t
    rho2 = best_rho2(1000, alpha)
    sequence = np.array([margin(int(k), alpha, rho2) for k in t])
    missed = (np.abs(means) > sequence).any(axis=1).mean()
    naive = (np.abs(means) > 1.959964 / np.sqrt(t)).any(axis=1).mean()
    assert missed <= alpha
    assert naive > 3 * alpha


def test_difference_interval_narrows_and_covers_a_known_gap() -> None:
    rng = np.random.default_rng(5)
    canary, stable = rng.normal(1.2, 1, 2000), rng.normal(1.0, 1, 18000)
    interval = difference(
        Moments.of(canary), Moments.of(stable), alpha=0.05, rho2=best_rho2(2000, 0.05)
    )
    assert interval.lower < 0.2 < interval.upper
    assert interval.lower > 0  # 20,000 rows tell a 0.2 SD gap from none
    assert interval.t == 20000
