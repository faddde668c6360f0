"""The Flagger-style rule: Flagger's analysis loop with its A/B settings, on the same traffic."""

from __future__ import annotations

import numpy as np

from bench.canary_sim.model import BUCKETS, Second, quantile
from bench.canary_sim.rules import PROMOTE, ROLLBACK, Outcome


class FlaggerRule:
    """Flagger's analysis loop, A/B style: every `interval` s, checks over that interval only."""

    def __init__(
        self,
        b: int,
        labels: bool,
        interval: int = 60,
        threshold: int = 5,
        iterations: int = 10,
        min_requests: int = 10,
    ) -> None:
        self.labels, self.interval, self.threshold = labels, interval, threshold
        self.iterations, self.min_requests = iterations, min_requests
        self.requests = np.zeros(b, np.int64)  # cumulative canary requests
        self.window = np.zeros((2, b), np.int64)  # this interval's canary requests, errors
        self.hist = np.zeros((b, BUCKETS), np.int64)
        self.loss = np.zeros((2, 2, b))  # this interval's arrived labels: (n, sum) x arm
        self.failures = np.zeros(b, np.int64)
        self.passes = np.zeros(b, np.int64)
        self.active = np.ones(b, bool)
        self.out = Outcome(b)

    def add(self, idx: np.ndarray, sec: Second, hist: np.ndarray) -> None:
        self.requests[idx] += sec.requests
        self.window[0, idx] += sec.requests
        self.window[1, idx] += sec.errors
        self.hist[idx] += hist

    def arrive(self, labels: np.ndarray) -> None:
        self.loss[0] += labels[0]
        self.loss[1] += labels[0] * labels[1]

    def look(self, t: int) -> None:
        if t % self.interval:
            return
        idx = np.flatnonzero(self.active)
        req, err = self.window[:, idx].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = (req >= self.min_requests) & (100 * (req - err) / req >= 99.0)
            ok &= quantile(self.hist[idx], 0.95) <= 500.0  # NaN (no answers) fails
            if self.labels:
                (n_s, n_c), (sum_s, sum_c) = self.loss[:, :, idx]
                ok &= (n_c > 0) & (n_s > 0) & (sum_c / n_c <= 1.10 * (sum_s / n_s))
        self.passes[idx] += ok
        self.failures[idx] += ~ok
        for j in np.flatnonzero(
            (self.failures[idx] >= self.threshold) | (self.passes[idx] >= self.iterations)
        ):
            i = int(idx[j])
            code = ROLLBACK if self.failures[i] >= self.threshold else PROMOTE
            self.out.record(i, code, t, int(self.requests[i]))
            self.active[i] = False
        self.window[:] = 0
        self.hist[:] = 0
        self.loss[:] = 0
