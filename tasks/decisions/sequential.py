"""Always-valid confidence sequences for a difference of means: the canary's and the guard's maths.

Method: the asymptotic confidence sequence (AsympCS) of Waudby-Smith, Arbour, Sinha, Kennedy and
Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences" (Annals of
Statistics, 2024), Theorem 2.2, built on Robbins' Gaussian mixture boundary (Howard, Ramdas,
McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals of
Statistics 2021, Eq. 14). For a running mean over t observations with sample standard deviation σ̂,

    μ̂_t ± σ̂_t · sqrt( 2(tρ² + 1) / (t²ρ²) · log( sqrt(tρ² + 1) / α ) )

covers the true mean at every t at once with probability ≥ 1 - α (asymptotically): the analysis
may look after every request and stop whenever it likes, and the error rate stays α. ρ only moves
where the sequence is tightest (at t_opt, `best_rho2`), never its validity. The interval is
two-sided; using one end as a one-sided bound is valid and slightly conservative.

Why this and not the alternatives: an mSPRT needs a parametric likelihood (losses and latencies
are skewed, and their variance is unknown), and group-sequential α-spending needs the number of
looks and the information fraction in advance, while a canary is looked at once a second at
whatever traffic arrives. AsympCS needs only a CLT, works for any number of looks, and is closed
form, so a verdict is microseconds.

A randomized traffic split is a randomized experiment: the difference of the two arms' means is
the AIPW estimate with arm means as the outcome model, whose per-observation variance is
var_c/π + var_s/(1 - π), π being the canary's share (Waudby-Smith et al., Section 3.2).
Binary outcomes use Agresti-Caffo's adjusted proportions for the variance, so a run without a
single error does not look infinitely precise.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Moments(BaseModel):
    """Count, mean and sum of squared deviations of a sample: all a mean's test needs."""

    model_config = _FROZEN

    n: int = Field(0, ge=0)
    mean: float = 0.0
    m2: float = Field(0.0, ge=0, description="Sum of squared deviations from the mean.")

    @classmethod
    def of(cls, values) -> Moments:
        n, mean, m2 = 0, 0.0, 0.0
        for value in values:  # Welford: stable for prices in the millions
            n += 1
            delta = value - mean
            mean += delta / n
            m2 += delta * (value - mean)
        return cls.model_construct(n=n, mean=mean, m2=max(m2, 0.0))

    @classmethod
    def of_counts(cls, hits: int, n: int) -> Moments:
        """A 0/1 outcome with `hits` ones out of `n`."""
        mean = hits / n if n else 0.0
        return cls.model_construct(n=n, mean=mean, m2=n * mean * (1 - mean))

    def merge(self, other: Moments) -> Moments:
        if not other.n:
            return self
        if not self.n:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return Moments.model_construct(n=n, mean=mean, m2=m2)

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


class Interval(BaseModel):
    """A confidence bound pair on a difference (canary minus weighted stable)."""

    model_config = _FROZEN

    estimate: float
    lower: float
    upper: float
    t: int = Field(description="Observations behind it, both arms together.")

    def scaled(self, factor: float, shift: float = 0.0) -> Interval:
        """The same interval in other units: every end divided by `factor`, then `shift` added."""
        return Interval.model_construct(
            estimate=self.estimate / factor + shift, lower=self.lower / factor + shift,
            upper=self.upper / factor + shift, t=self.t,
        )  # fmt: skip


def best_rho2(t_opt: float, alpha: float) -> float:
    """ρ² that makes the sequence tightest at t_opt observations (Waudby-Smith et al., Eq. 5)."""
    log_term = -2 * math.log(alpha)
    return (log_term + math.log(log_term + 1)) / t_opt


def margin(t: int, alpha: float, rho2: float) -> float:
    """Half-width of the standardized (σ = 1) asymptotic confidence sequence at time t."""
    if t < 1:
        return math.inf
    grow = t * rho2 + 1
    return math.sqrt(2 * grow / (t * t * rho2) * math.log(math.sqrt(grow) / alpha))


def fixed_horizon_n(effect: float, sd: float, alpha: float, beta: float) -> float:
    """Observations a one-look test needs to tell 0 from `effect` with one-sided α and power 1-β.

    The textbook n = ((z_{1-α} + z_{1-β}) σ / δ)²; the benchmark holds the sequential test to it.
    """
    z = NormalDist().inv_cdf
    return ((z(1 - alpha) + z(1 - beta)) * sd / effect) ** 2


def _adjusted(m: Moments, binary: bool) -> tuple[float, float]:
    """Mean and variance for the interval; binary outcomes get Agresti-Caffo's +1/+1."""
    if binary:
        p = (m.mean * m.n + 1) / (m.n + 2)
        return m.mean, p * (1 - p)
    return m.mean, m.variance


def difference(
    canary: Moments,
    stable: Moments,
    *,
    alpha: float,
    rho2: float,
    weight: float = 1.0,
    binary: bool = False,
) -> Interval:
    """Always-valid interval on mean_c - weight·mean_s (weight 1.1 tests a +10% margin)."""
    t = canary.n + stable.n
    mean_c, var_c = _adjusted(canary, binary)
    mean_s, var_s = _adjusted(stable, binary)
    estimate = mean_c - weight * mean_s
    if not canary.n or not stable.n:
        return Interval.model_construct(estimate=estimate, lower=-math.inf, upper=math.inf, t=t)
    share = canary.n / t
    sd = math.sqrt(var_c / share + weight * weight * var_s / (1 - share))
    half = sd * margin(t, alpha, rho2)
    low, high = estimate - half, estimate + half
    if binary:  # a difference of two rates lies in [-1, 1]
        low, high = max(low, -1.0), min(high, 1.0)
    return Interval.model_construct(estimate=estimate, lower=low, upper=high, t=t)


def one_sample(sample: Moments, *, alpha: float, rho2: float, binary: bool = False) -> Interval:
    """Always-valid interval on one sample's mean."""
    mean, var = _adjusted(sample, binary)
    if not sample.n:
        return Interval.model_construct(estimate=mean, lower=-math.inf, upper=math.inf, t=0)
    half = math.sqrt(var) * margin(sample.n, alpha, rho2)
    low, high = mean - half, mean + half
    if binary:  # a rate lies in [0, 1]
        low, high = max(low, 0.0), min(high, 1.0)
    return Interval.model_construct(estimate=mean, lower=low, upper=high, t=sample.n)
