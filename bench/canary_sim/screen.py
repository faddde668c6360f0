"""A numpy transcription of `tasks.decisions.canary.decide_canary`, over many canaries at once.

Only a screen: the simulation calls the real verdict at every look where this says "not wait",
and at a random sample of the other looks to check the transcription (any disagreement is
counted and printed). Same formulas in the same order of operations as `sequential` and
`canary_checks`; only the latency histogram's exceedance sum is added in another order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.canary_sim.model import BOUNDS, quantile
from tasks.decisions.canary import CanaryPolicy
from tasks.decisions.canary_checks import CHECKS, P95_SHARE
from tasks.decisions.sequential import best_rho2

UNKNOWN, NOT_WORSE, WORSE = 0, 1, 2
STATUS = {"unknown": UNKNOWN, "not-worse": NOT_WORSE, "worse": WORSE}
WAIT, PROMOTE, ROLLBACK, WINDOW = 0, 1, 2, 3
CHECK_NAMES = ("error_rate", "error_rate_excess", "latency_p95", "accuracy", "prediction_shift")
_LOWS = np.concatenate([[0.0], BOUNDS])  # bucket i spans (LOWS[i], HIGHS[i]]
_HIGHS = np.concatenate([BOUNDS, [np.inf]])


@dataclass
class Evidence:
    """Both arms' cumulative evidence for K canaries; index 0 stable, 1 canary."""

    requests: np.ndarray  # (2, K)
    errors: np.ndarray  # (2, K)
    hist: np.ndarray  # (2, K, BUCKETS)
    predictions: np.ndarray  # (3, 2, K): n, mean, m2
    losses: np.ndarray  # (3, 2, K)
    elapsed: float


def _margin(t: np.ndarray, alpha: float, rho2: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        grow = t * rho2 + 1
        out = np.sqrt(2 * grow / (t * t * rho2) * np.log(np.sqrt(grow) / alpha))
    return np.where(t < 1, np.inf, out)


def _binary(hits: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, hits / n, 0.0)
    p = (mean * n + 1) / (n + 2)
    return mean, p * (1 - p)


def _plain(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, mean, m2 = m
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean, np.where(n > 1, m2 / (n - 1), 0.0)


def _one_sample(mean, var, n, level) -> tuple[np.ndarray, np.ndarray]:
    half = np.sqrt(var) * _margin(n, *level)
    empty = n == 0
    return np.where(empty, -np.inf, mean - half), np.where(empty, np.inf, mean + half)


def _difference(c, s, nc, ns, level, weight=1.0):
    (mean_c, var_c), (mean_s, var_s) = c, s
    t = nc + ns
    estimate = mean_c - weight * mean_s
    with np.errstate(divide="ignore", invalid="ignore"):
        share = nc / t
        sd = np.sqrt(var_c / share + weight * weight * var_s / (1 - share))
    half = sd * _margin(t, *level)
    empty = (nc == 0) | (ns == 0)
    return (
        estimate,
        np.where(empty, -np.inf, estimate - half),
        np.where(empty, np.inf, estimate + half),
    )


def _status(worse: np.ndarray, fine: np.ndarray) -> np.ndarray:
    return np.where(worse, WORSE, np.where(fine, NOT_WORSE, UNKNOWN))


def _exceedances(hist: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    thr = threshold[:, None]
    with np.errstate(invalid="ignore"):
        part = np.where((thr <= _LOWS) | np.isinf(_HIGHS), 1.0, (_HIGHS - thr) / (_HIGHS - _LOWS))
    return (hist * np.where(thr < _HIGHS, part, 0.0)).sum(1)


class Screen:
    """`decide` gives each canary's action code and the five check statuses."""

    def __init__(self, policy: CanaryPolicy) -> None:
        assert len(CHECKS) == len(CHECK_NAMES), "the verdict's checks changed: update the screen"
        self.p = policy
        a, b = policy.check_alpha, policy.beta
        self.low = (a, best_rho2(policy.tuned_for, a))
        self.high = (b, best_rho2(policy.tuned_for, b))

    def decide(self, e: Evidence) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        req_s, req_c = e.requests.astype(float)
        err_s, err_c = e.errors.astype(float)
        # error rate against the absolute cap
        mean, var = _binary(err_c, req_c)
        lower = _one_sample(mean, var, req_c, self.low)[0]
        upper = _one_sample(mean, var, req_c, self.high)[1]
        error_rate = _status(lower > p.max_error_rate, upper <= p.max_error_rate)
        # error rate against stable's
        bc, bs = _binary(err_c, req_c), _binary(err_s, req_s)
        lower = _difference(bc, bs, req_c, req_s, self.low)[1]
        upper = _difference(bc, bs, req_c, req_s, self.high)[2]
        excess = _status(lower > 0, upper < p.max_error_rate_excess)
        latency = self._latency(e)
        accuracy = self._accuracy(e)
        shift, shift_required = self._shift(e, accuracy == NOT_WORSE)
        status = np.stack([error_rate, excess, latency, accuracy, shift], 1)
        required = np.stack(
            [
                *(np.ones_like(req_c, bool),) * 3,
                np.full(req_c.shape, p.require_labels),
                shift_required,
            ],
            1,
        )
        worse = (status == WORSE).any(1)
        pending = ((status == UNKNOWN) & required).any(1) | (req_c < p.min_requests)
        exhausted = (req_c >= p.max_requests) | (e.elapsed >= p.max_window_s)
        action = np.where(
            worse, ROLLBACK, np.where(~pending, PROMOTE, np.where(exhausted, WINDOW, WAIT))
        )
        return action, status

    def _latency(self, e: Evidence) -> np.ndarray:
        p = self.p
        stable_n = e.hist[0].sum(1)
        ratio = p.max_p95_ratio * quantile(e.hist[0], 1 - P95_SHARE)
        use_ratio = (stable_n >= p.min_samples) & (ratio < p.latency_p95_slo_ms)
        limit = np.where(use_ratio, ratio, p.latency_p95_slo_ms)
        answered = e.hist[1].sum(1).astype(float)
        slow = np.minimum(np.rint(_exceedances(e.hist[1], limit)), answered)
        mean, var = _binary(slow, answered)
        lower = _one_sample(mean, var, answered, self.low)[0]
        upper = _one_sample(mean, var, answered, self.high)[1]
        return _status(lower > P95_SHARE, (answered > 0) & (upper < P95_SHARE))

    def _accuracy(self, e: Evidence) -> np.ndarray:
        p = self.p
        ns, nc = e.losses[0]
        c, s = _plain(e.losses[:, 1]), _plain(e.losses[:, 0])
        lower = _difference(c, s, nc, ns, self.low)[1]
        upper = _difference(c, s, nc, ns, self.high, 1 + p.max_loss_increase)[2]
        enough = np.minimum(nc, ns) >= p.min_samples
        return _status(enough & (lower > 0), enough & (upper < 0))

    def _shift(self, e: Evidence, justified: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.p.max_prediction_shift
        ns, nc = e.predictions[0]
        c, s = _plain(e.predictions[:, 1]), _plain(e.predictions[:, 0])
        sd = np.sqrt(s[1])
        sd = np.where(sd == 0, 1.0, sd)
        _, low_lo, low_hi = _difference(c, s, nc, ns, self.low)
        _, high_lo, high_hi = _difference(c, s, nc, ns, self.high)
        low_lo, low_hi, high_lo, high_hi = (x / sd for x in (low_lo, low_hi, high_lo, high_hi))
        enough = np.minimum(nc, ns) >= self.p.min_samples
        worse = enough & ((low_lo > m) | (low_hi < -m))
        fine = enough & (-m < high_lo) & (high_hi < m)
        status = _status(worse & ~justified, fine)
        return np.where(worse & justified, NOT_WORSE, status), ~justified
