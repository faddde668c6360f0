"""Does the bench's evidence equal the product's? The same simulated rows, counted both ways.

A short run of one canary keeps its rows; they are written as the model server logs them
(`records_frame`, one request per row, failed requests without probabilities), labels joined by
request id, and read back by `tasks.release.window.version_evidence` with `Scoring.classifier`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from bench.canary_classifier_sim.run import Arms, Batch, Traffic, evidence
from bench.canary_classifier_sim.world import CLASS_NAMES, Predictor
from bench.canary_sim.model import merge
from tasks.modelserver.log_writer import LogRecord, records_frame
from tasks.release.window import version_evidence

SINCE = datetime(2025, 1, 1, tzinfo=UTC)


def _records(rows: list[tuple], k: int) -> tuple[list[LogRecord], list[object]]:
    records, labels = [], []
    for t, (arm, req, err, latency, proba, mask, got) in rows:
        at = (SINCE + timedelta(seconds=t - 0.5)).timestamp()
        for j in range(int(err[0])):
            records.append(LogRecord(at, f"{t}-{arm}-e{j}", arm + 1, [[0.0]], [math.nan], 1.0,
                                     "error"))  # fmt: skip
            labels.append(None)
        names = iter(np.asarray(CLASS_NAMES[k], dtype=object)[got] if got is not None else [])
        for j in range(int(req[0] - err[0])):
            records.append(LogRecord(at, f"{t}-{arm}-{j}", arm + 1, [[0.0]],
                                     [float(proba[j].argmax())], float(latency[j]), "ok",
                                     [proba[j].tolist()]))  # fmt: skip
            labels.append(next(names) if mask is not None and mask[j] else None)
    return records, labels


def compare(k: int, canary: Predictor, seconds: int = 20, seed: int = 0) -> list[str]:
    """Differences between the bench's and the product's evidence of both arms (none: [])."""
    batch = Batch(k, canary, 0.5, False, 1, seed, (0,), window=seconds, delay=0)
    arms, traffic = Arms.empty(k, 1), Traffic(batch, np.random.default_rng(seed))
    traffic.rows, rows = [], []
    for t in range(1, seconds + 1):
        arms.losses = merge(arms.losses, traffic.second(arms, np.array([0])))
        rows += [(t, r) for r in traffic.rows]
        traffic.rows = []
    records, labels = _records(rows, k)
    logs = records_frame(records, ["x"])
    logs["label"] = labels
    now = SINCE + timedelta(seconds=seconds)
    problems = []
    for arm in (0, 1):
        ours = evidence(arms, arm, 0, seconds, traffic.scoring.loss_name)
        theirs = version_evidence(logs, arm + 1, SINCE, now, traffic.scoring)
        for field in ("requests", "errors", "latency_counts", "loss_name", "elapsed_s"):
            if getattr(ours, field) != getattr(theirs, field):
                problems.append(
                    f"arm {arm} {field}: {getattr(ours, field)} vs {getattr(theirs, field)}"
                )
        pairs = [("predictions", ours.predictions, theirs.predictions),
                 ("losses", ours.losses, theirs.losses)]  # fmt: skip
        pairs += [(f"class {c}", a, b) for c, (a, b) in enumerate(
            zip(ours.class_probabilities, theirs.class_probabilities, strict=True))]  # fmt: skip
        if len(ours.class_probabilities) != len(theirs.class_probabilities):
            problems.append(f"arm {arm} class_probabilities: different lengths")
        for name, a, b in pairs:
            if a.n != b.n or not np.allclose([a.mean, a.m2], [b.mean, b.m2], rtol=1e-9):
                problems.append(f"arm {arm} {name}: {a} vs {b}")
    return problems
