"""Per-version serving counters: requests, errors, a latency histogram, a prediction summary.

Cheap enough to update on every request (a lock, a few additions); the reservoir keeps a uniform
sample of predictions of bounded size for the canary analysis's statistical tests.
"""

from __future__ import annotations

import bisect
import math
import random
import threading

from pydantic import BaseModel, ConfigDict

# The canary's buckets: these counters and the evidence read from S3 bucket latency alike.
from tasks.decisions.canary_checks import LATENCY_BOUNDS_MS


class VersionSnapshot(BaseModel):
    """One version's counters at one moment, as `GET /mlops/v1/stats` reports them."""

    model_config = ConfigDict(frozen=True)

    version: int
    requests: int
    errors: int
    rows: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    prediction_count: int
    prediction_mean: float | None
    prediction_std: float | None
    prediction_sample: list[float]


def histogram_quantile(counts: list[int], bounds: tuple[float, ...], q: float) -> float | None:
    """The q-quantile of a bucketed histogram, interpolated inside the bucket it falls in."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = bounds[index - 1] if index > 0 else 0.0
            high = bounds[index] if index < len(bounds) else bounds[-1] * 1.1
            return low + (high - low) * (rank - seen) / count
        seen += count
    return bounds[-1]


class VersionStats:
    """Thread-safe counters of one version."""

    def __init__(self, version: int, reservoir_size: int = 1000, seed: int = 0) -> None:
        self.version = version
        self._lock = threading.Lock()
        self._random = random.Random(seed * 1_000_003 + version)
        self._reservoir_size = reservoir_size
        self.requests = 0
        self.errors = 0
        self.rows = 0
        self._latency_counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._sample: list[float] = []

    def record(self, latency_ms: float, predictions: list[float]) -> None:
        """One request this version answered."""
        bucket = bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)
        with self._lock:
            self.requests += 1
            self.rows += len(predictions)
            self._latency_counts[bucket] += 1
            for value in predictions:
                self._add_prediction(value)

    def record_error(self) -> None:
        """One request this version failed (raised, or answered NaN/inf)."""
        with self._lock:
            self.requests += 1
            self.errors += 1

    def _add_prediction(self, value: float) -> None:
        # Welford's running mean and variance, then reservoir sampling (Algorithm R).
        self._count += 1
        delta = value - self._mean
        self._mean += delta / self._count
        self._m2 += delta * (value - self._mean)
        if len(self._sample) < self._reservoir_size:
            self._sample.append(value)
        else:
            slot = self._random.randrange(self._count)
            if slot < self._reservoir_size:
                self._sample[slot] = value

    def snapshot(self) -> VersionSnapshot:
        with self._lock:
            counts = list(self._latency_counts)
            count, mean, m2 = self._count, self._mean, self._m2
            sample = list(self._sample)
            requests, errors, rows = self.requests, self.errors, self.rows

        def quantile(q: float) -> float | None:
            return histogram_quantile(counts, LATENCY_BOUNDS_MS, q)

        return VersionSnapshot(
            version=self.version,
            requests=requests,
            errors=errors,
            rows=rows,
            latency_ms_p50=quantile(0.5),
            latency_ms_p95=quantile(0.95),
            latency_ms_p99=quantile(0.99),
            prediction_count=count,
            prediction_mean=mean if count else None,
            prediction_std=math.sqrt(m2 / (count - 1)) if count > 1 else None,
            prediction_sample=sample,
        )
