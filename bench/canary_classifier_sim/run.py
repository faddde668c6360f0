"""One batch of classifier canaries of one cell, the real verdict at every one-second look."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.canary_classifier_sim.world import (
    CLASS_NAMES,
    Predictor,
    labels_of,
    log_loss,
    noise,
    predict,
    softmax,
    true_logits,
    watched,
)
from bench.canary_sim.model import (
    BUCKETS,
    CANARY_SHARE,
    LATENCY_MEDIAN_MS,
    LATENCY_SIGMA,
    STABLE_ERROR_RATE,
    histogram,
    merge,
    moments,
)
from bench.canary_sim.rules import PROMOTE, ROLLBACK, WINDOW, Outcome
from tasks.decisions.canary import CanaryPolicy, VersionEvidence, decide_canary
from tasks.decisions.sequential import Moments
from tasks.modelserver.answers import proba_column
from tasks.release.window import Scoring


@dataclass(frozen=True)
class Batch:
    k: int  # classes
    canary: Predictor
    label_fraction: float
    require_labels: bool
    canaries: int
    seed: int
    key: tuple[int, ...]  # spawn key of this batch's random stream
    window: int = 600
    delay: int = 60
    rps: float = 50.0


@dataclass
class Arms:
    """Both arms' cumulative evidence for b canaries; index 0 stable, 1 canary."""

    requests: np.ndarray  # (2, b)
    errors: np.ndarray  # (2, b)
    hist: np.ndarray  # (2, b, BUCKETS)
    predictions: np.ndarray  # (watched, 3, 2, b): n, mean, m2 of each watched probability
    losses: np.ndarray  # (3, 2, b) of the labelled rows that have arrived

    @classmethod
    def empty(cls, k: int, b: int) -> Arms:
        return cls(
            np.zeros((2, b), np.int64),
            np.zeros((2, b), np.int64),
            np.zeros((2, b, BUCKETS), np.int64),
            np.zeros((len(watched(k)), 3, 2, b)),
            np.zeros((3, 2, b)),
        )


def _moments(m: np.ndarray) -> Moments:
    return Moments(n=int(m[0]), mean=float(m[1]), m2=float(m[2]))


def evidence(arms: Arms, arm: int, i: int, t: int, loss_name: str) -> VersionEvidence:
    """One version's evidence as `version_evidence` builds it from the logs (same fields)."""
    probs = [_moments(arms.predictions[w, :, arm, i]) for w in range(arms.predictions.shape[0])]
    return VersionEvidence(
        version=arm + 1,
        requests=int(arms.requests[arm, i]),
        errors=int(arms.errors[arm, i]),
        latency_counts=tuple(arms.hist[arm, i].tolist()),
        predictions=probs[0],
        class_probabilities=tuple(probs) if len(probs) > 1 else (),
        losses=_moments(arms.losses[:, arm, i]),
        loss_name=loss_name,
        elapsed_s=float(t),
    )


def _audit_loss(scoring: Scoring, k: int, proba: np.ndarray, labels: np.ndarray, loss) -> int:
    """Rows whose loss differs from the product's own `Scoring.loss_of` on the same rows."""
    frame = pd.DataFrame(proba, columns=[proba_column(c) for c in range(k)])
    frame["label"] = np.asarray(CLASS_NAMES[k], dtype=object)[labels]
    return int((~np.isclose(scoring.loss_of(frame), loss, rtol=1e-12, atol=0)).sum())


class Traffic:
    """Each second's requests of both arms for the active canaries, added to `Arms`."""

    def __init__(self, batch: Batch, rng: np.random.Generator) -> None:
        self.b, self.rng = batch, rng
        self.scoring = Scoring.classifier(CLASS_NAMES[batch.k])
        self.audited = self.loss_mismatches = 0
        self.rows: list[tuple] | None = None  # set to a list to keep every row (audit.py)

    def second(self, arms: Arms, idx: np.ndarray) -> np.ndarray:
        """Add one second of traffic; the labelled losses (3, 2, b) it will deliver later."""
        b, rng, k, f = self.b, self.rng, self.b.k, self.b.label_fraction
        labelled = np.zeros((3, 2, b.canaries))
        specs = ((1 - CANARY_SHARE, Predictor()), (CANARY_SHARE, b.canary))
        for arm, (share, spec) in enumerate(specs):
            req = rng.poisson(b.rps * share, idx.size)
            err = rng.binomial(req, STABLE_ERROR_RATE)
            ans = req - err
            n = int(ans.sum())
            arms.requests[arm, idx] += req
            arms.errors[arm, idx] += err
            latency = LATENCY_MEDIAN_MS * np.exp(LATENCY_SIGMA * rng.standard_normal(n))
            arms.hist[arm, idx] += histogram(ans, latency)
            logits = true_logits(rng, k, n)
            proba = predict(logits, noise(rng, k, n), spec)
            mask = labels = None
            for w, col in enumerate(watched(k)):
                chunk = np.stack(moments(ans, proba[:, col]))
                kept = arms.predictions[w]  # a view: (3, 2, b)
                kept[:, arm, idx] = merge(kept[:, arm, idx], chunk)
            if f > 0:
                mask = rng.random(n) < f
                labels = labels_of(rng, softmax(logits[mask]))
                self._labelled(labelled[:, arm], idx, ans, proba, mask, labels)
            if self.rows is not None:
                self.rows.append((arm, req, err, latency, proba, mask, labels))
        return labelled

    def _labelled(self, out, idx, ans, proba, mask, labels) -> None:
        """The log-loss moments of one arm's labelled rows, per canary, into `out` (3, b)."""
        owner = np.repeat(np.arange(idx.size), ans)[mask]
        loss = log_loss(proba[mask], labels)
        if self.audited < 20_000:  # the product's own loss on the first rows of the batch
            self.audited += loss.size
            self.loss_mismatches += _audit_loss(self.scoring, self.b.k, proba[mask], labels, loss)
        out[:, idx] = moments(np.bincount(owner, minlength=idx.size), loss)


def look(arms: Arms, i: int, t: int, policy: CanaryPolicy, loss_name: str, out: Outcome) -> bool:
    """The real verdict on canary i's evidence at second t; records it unless it waits."""
    stable = evidence(arms, 0, i, t, loss_name)
    canary = evidence(arms, 1, i, t, loss_name)
    verdict = decide_canary(stable, canary, policy)
    if verdict.action == "wait":
        return False
    code = PROMOTE if verdict.action == "promote" else ROLLBACK
    code = WINDOW if verdict.basis == "window-ended" else code
    worse = sum(1 << n for n, c in enumerate(verdict.checks) if c.status == "worse")
    out.record(i, code, t, canary.requests, stable.losses.n + canary.losses.n, reasons=worse)
    return True


def simulate(batch: Batch) -> dict:
    """Run every canary of the batch until the verdict decides or the window ends."""
    start = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(batch.seed, spawn_key=batch.key))
    policy = CanaryPolicy(require_labels=batch.require_labels, max_window_s=batch.window)
    arms, traffic = Arms.empty(batch.k, batch.canaries), Traffic(batch, rng)
    active, out = np.ones(batch.canaries, bool), Outcome(batch.canaries)
    pending: dict[int, np.ndarray] = {}
    calls, spent = 0, {"traffic": 0.0, "verdict": 0.0}
    for t in range(1, batch.window + 1):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        clock = time.perf_counter()
        labelled = traffic.second(arms, idx)
        if batch.label_fraction > 0:
            pending[t + batch.delay] = labelled
        arrived = pending.pop(t, None)
        if arrived is not None:
            arms.losses = merge(arms.losses, arrived)
        spent["traffic"] += time.perf_counter() - clock
        clock = time.perf_counter()
        for i in idx.tolist():
            active[i] = not look(arms, i, t, policy, traffic.scoring.loss_name, out)
        calls += idx.size
        spent["verdict"] += time.perf_counter() - clock
    return {
        "key": batch.key,
        "outcome": out.as_dict(),
        "checks": {
            "verdict_calls": calls,
            "loss_rows_audited": traffic.audited,
            "loss_mismatches": traffic.loss_mismatches,
        },
        "seconds": {**spent, "total": time.perf_counter() - start},
    }
