"""The simulated world: each second, each arm's requests, errors, latencies, predictions, labels.

True price y ~ lognormal(12.0, 0.4); stable predicts ŷ = y·exp(N(0, 0.10)); a canary with loss
increase x predicts y + (ŷ' − y)(1 + x), ŷ' drawn like stable's (so its absolute error is (1 + x)×
stable's), then × (1 + shift). An errored request has no prediction and no latency; latency is
lognormal(median 20 ms, σ 0.5) in both arms. A fraction f of answered rows gets its label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.decisions.canary_checks import LATENCY_BOUNDS_MS

BOUNDS = np.asarray(LATENCY_BOUNDS_MS)
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
CANARY_SHARE = 0.10
LOG_PRICE, LOG_PRICE_SD, PREDICTION_LOG_SD = 12.0, 0.4, 0.10
LATENCY_MEDIAN_MS, LATENCY_SIGMA = 20.0, 0.5
STABLE_ERROR_RATE = 0.001


@dataclass(frozen=True)
class Scenario:
    key: str
    family: str
    title: str
    loss_increase: float = 0.0
    shift: float = 0.0
    canary_error_rate: float = STABLE_ERROR_RATE


@dataclass(frozen=True)
class Arm:
    """What one arm of one scenario does with each request."""

    share: float
    error_rate: float
    loss_increase: float = 0.0
    shift: float = 0.0


def arms(scenario: Scenario) -> tuple[Arm, Arm]:
    stable = Arm(1 - CANARY_SHARE, STABLE_ERROR_RATE)
    canary = Arm(CANARY_SHARE, scenario.canary_error_rate, scenario.loss_increase, scenario.shift)
    return stable, canary


@dataclass
class Second:
    """One arm's traffic in one second for k canaries; rows are grouped by canary (sorted)."""

    requests: np.ndarray  # (k,) requests per canary
    errors: np.ndarray  # (k,)
    answered: np.ndarray  # (k,) = requests - errors
    latency: np.ndarray | None  # answered rows, ms (None when not needed)
    prediction: np.ndarray | None  # answered rows (None when not needed)
    labelled: np.ndarray  # (k,) labelled rows per canary
    loss: np.ndarray  # labelled rows: |prediction - y|
    ape: np.ndarray | None  # labelled rows: |prediction - y| / y


def _predict(rng: np.random.Generator, y: np.ndarray, arm: Arm) -> np.ndarray:
    yhat = y * np.exp(PREDICTION_LOG_SD * rng.standard_normal(y.size))
    if arm.loss_increase:
        yhat = y + (yhat - y) * (1 + arm.loss_increase)
    if arm.shift:
        yhat = yhat * (1 + arm.shift)
    return yhat


def draw(
    rng: np.random.Generator,
    k: int,
    rps: float,
    arm: Arm,
    label_fraction: float,
    *,
    full: bool,
    latency: bool,
) -> Second:
    """One second of one arm for k canaries (Poisson thinning: the arm gets Poisson(share·rps)).

    `full`: every answered row's prediction and latency (and the labelled rows' APE); otherwise
    only what the Flagger-style rule reads: latencies if `latency`, losses of labelled rows.
    """
    requests = rng.poisson(rps * arm.share, k)
    errors = rng.binomial(requests, arm.error_rate)
    answered = requests - errors
    rows = int(answered.sum())
    lat = pred = ape = None
    if latency or full:
        lat = LATENCY_MEDIAN_MS * np.exp(LATENCY_SIGMA * rng.standard_normal(rows))
    if full:
        y = np.exp(LOG_PRICE + LOG_PRICE_SD * rng.standard_normal(rows))
        pred = _predict(rng, y, arm)
        if label_fraction >= 1:
            mask = None
        elif label_fraction <= 0:
            mask = np.zeros(rows, bool)
        else:
            mask = rng.random(rows) < label_fraction
        if mask is not None:
            owner = np.repeat(np.arange(k), answered)
            labelled = np.bincount(owner[mask], minlength=k)
            y, pred_l = y[mask], pred[mask]
        else:
            labelled, pred_l = answered.copy(), pred
        loss = np.abs(pred_l - y)
        ape = loss / y
    else:
        labelled = rng.binomial(answered, label_fraction) if label_fraction else answered * 0
        y = np.exp(LOG_PRICE + LOG_PRICE_SD * rng.standard_normal(int(labelled.sum())))
        loss = np.abs(_predict(rng, y, arm) - y)
    return Second(requests, errors, answered, lat, pred, labelled, loss, ape)


def moments(counts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group (n, mean, m2) of values grouped by consecutive `counts`."""
    k = counts.size
    owner = np.repeat(np.arange(k), counts)
    n = counts.astype(float)
    total = np.bincount(owner, weights=values, minlength=k)
    mean = np.divide(total, n, out=np.zeros(k), where=n > 0)
    dev = values - mean[owner]
    return n, mean, np.bincount(owner, weights=dev * dev, minlength=k)


def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chan et al.'s pairwise merge of stacked (n, mean, m2) arrays, shape (3, ...)."""
    n = a[0] + b[0]
    delta = b[1] - a[1]
    w = np.divide(b[0], n, out=np.zeros_like(n), where=n > 0)
    return np.stack([n, a[1] + delta * w, a[2] + b[2] + delta * delta * a[0] * w])


def histogram(counts: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Per-canary latency histogram (k, BUCKETS): bucket = bisect_left(LATENCY_BOUNDS_MS, ms)."""
    k = counts.size
    flat = np.repeat(np.arange(k) * BUCKETS, counts) + np.searchsorted(BOUNDS, latency, "left")
    return np.bincount(flat, minlength=k * BUCKETS).reshape(k, BUCKETS)


def quantile(hist: np.ndarray, q: float) -> np.ndarray:
    """Histogram quantile per row, interpolated inside its bucket (as the model server does)."""
    total = hist.sum(1)
    rank = q * total
    cum = np.cumsum(hist, 1)
    idx = np.argmax(cum >= rank[:, None], 1)
    rows = np.arange(hist.shape[0])
    count = hist[rows, idx]
    seen = cum[rows, idx] - count
    low = np.where(idx > 0, BOUNDS[np.maximum(idx - 1, 0)], 0.0)
    high = BOUNDS[np.minimum(idx, BOUNDS.size - 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = low + (high - low) * (rank - seen) / count
    return np.where(total > 0, value, np.nan)
