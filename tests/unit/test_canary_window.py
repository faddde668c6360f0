"""The canary window's counting: one version's evidence from logged rows, a pure function.

Rows are built by the writer's own `records_frame`, so they have the shape the model server
writes; reading them back from the real S3 server is tests/integration/test_canary_window.py.
"""

from __future__ import annotations

import bisect
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tasks.decisions.canary_checks import LATENCY_BOUNDS_MS
from tasks.decisions.sequential import Moments
from tasks.modelserver.log_writer import LogRecord, records_frame
from tasks.modelserver.logs import latest_labels, log_frame, to_parquet, with_log_defaults
from tasks.release.window import Loss, version_evidence

SINCE = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
NOW = SINCE + timedelta(minutes=10)
BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def at(seconds: float) -> float:
    """Epoch seconds `seconds` after the window opened."""
    return (SINCE + timedelta(seconds=seconds)).timestamp()


def ok(t: float, rid: str, version: int, predictions: list[float], latency: float) -> LogRecord:
    return LogRecord(at(t), rid, version, [[1.0]] * len(predictions), predictions, latency)


def failed(t: float, rid: str, version: int, rows: int, latency: float) -> LogRecord:
    return LogRecord(at(t), rid, version, [[1.0]] * rows, [math.nan] * rows, latency, "error")


def frame(*records: LogRecord, labels: dict[tuple[str, int], float] | None = None) -> pd.DataFrame:
    """Logged rows as the writer writes them, with a `label` column joined as readers join it."""
    logs = records_frame(records, ["x"])
    keys = list(zip(logs["request_id"], logs["row"], strict=True))
    logs["label"] = [(labels or {}).get(key, math.nan) for key in keys]
    return logs


def same(got: Moments, expected: Moments) -> bool:
    """Equal to Welford's running moments, floating-point error aside."""
    return got.n == expected.n and (got.mean, got.m2) == pytest.approx((expected.mean, expected.m2))


def bucket(latency_ms: float) -> int:
    """The model server's own bucketing (tasks/modelserver/stats.py)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def test_requests_are_distinct_ids_and_latency_is_bucketed_once_per_request() -> None:
    logs = frame(
        ok(1, "a", 1, [10.0, 20.0, 30.0], 4.0),  # three rows, one request
        ok(2, "b", 1, [40.0], 12.5),
        ok(3, "c", 2, [50.0], 7.0),
        ok(4, "d", 1, [60.0], LATENCY_BOUNDS_MS[20]),  # exactly on a bound: that bound's bucket
        ok(5, "e", 1, [70.0], 1e9),  # beyond the last bound: the overflow bucket
    )
    stable = version_evidence(logs, 1, SINCE, NOW)
    assert (stable.version, stable.requests, stable.errors) == (1, 4, 0)
    assert len(stable.latency_counts) == BUCKETS and sum(stable.latency_counts) == 4
    expected = [0] * BUCKETS
    for latency in (4.0, 12.5, LATENCY_BOUNDS_MS[20], 1e9):
        expected[bucket(latency)] += 1
    assert list(stable.latency_counts) == expected
    assert stable.latency_counts[20] == 1 and stable.latency_counts[-1] == 1
    assert same(stable.predictions, Moments.of([10.0, 20.0, 30.0, 40.0, 60.0, 70.0]))
    canary = version_evidence(logs, 2, SINCE, NOW)
    assert (canary.requests, canary.errors, canary.predictions.n) == (1, 0, 1)
    assert canary.latency_counts[bucket(7.0)] == 1
    assert stable.elapsed_s == canary.elapsed_s == 600.0


def test_a_failed_canary_answered_by_stable_is_an_error_of_the_canary_only() -> None:
    logs = frame(
        failed(1, "f", 2, 2, 3.0),  # the canary failed both rows...
        ok(1.01, "f", 1, [11.0, 12.0], 5.0),  # ...and stable answered them, same id
        ok(2, "g", 2, [13.0], 2.0),
        failed(3, "h", 1, 1, 1.0),  # stable failing too: the client got an error
    )
    canary = version_evidence(logs, 2, SINCE, NOW)
    assert (canary.requests, canary.errors) == (2, 1)
    assert sum(canary.latency_counts) == 1 and canary.latency_counts[bucket(2.0)] == 1
    assert same(canary.predictions, Moments.of([13.0]))  # NaN rows of errors never count
    stable = version_evidence(logs, 1, SINCE, NOW)
    assert (stable.requests, stable.errors) == (2, 1)
    assert sum(stable.latency_counts) == 1 and stable.latency_counts[bucket(5.0)] == 1
    assert same(stable.predictions, Moments.of([11.0, 12.0]))


def test_losses_count_answered_rows_whose_label_arrived() -> None:
    labels = {("a", 0): 12.0, ("a", 1): 15.0, ("b", 0): 1.0, ("c", 0): 100.0, ("d", 0): 7.0}
    logs = frame(
        ok(1, "a", 1, [10.0, 20.0, 30.0], 4.0),  # rows 0 and 1 labelled, row 2 not yet
        failed(2, "b", 1, 1, 2.0),  # labelled, but failed: no prediction to score
        ok(3, "c", 2, [90.0], 2.0),
        ok(4, "d", 2, [4.0], 2.0),
        labels=labels,
    )
    stable = version_evidence(logs, 1, SINCE, NOW)
    assert same(stable.losses, Moments.of([2.0, 5.0])) and stable.loss_name == "absolute error"
    canary = version_evidence(logs, 2, SINCE, NOW)
    assert same(canary.losses, Moments.of([10.0, 3.0]))
    squared = Loss("squared error", lambda p, y: (p - y) ** 2)
    assert same(version_evidence(logs, 2, SINCE, NOW, squared).losses, Moments.of([100.0, 9.0]))
    assert version_evidence(logs, 2, SINCE, NOW, squared).loss_name == "squared error"
    assert version_evidence(logs.drop(columns="label"), 1, SINCE, NOW).losses.n == 0


def test_only_rows_from_since_to_before_now_count() -> None:
    logs = frame(
        ok(-0.001, "before", 1, [1.0], 1.0),
        ok(0, "first", 1, [2.0], 1.0),  # at `since`: in
        ok(599.999, "last", 1, [3.0], 1.0),
        ok(600, "now", 1, [4.0], 1.0),  # at `now`: out
        failed(-5, "old-error", 1, 1, 1.0),
    )
    evidence = version_evidence(logs, 1, SINCE, NOW)
    assert (evidence.requests, evidence.errors) == (2, 0)
    assert same(evidence.predictions, Moments.of([2.0, 3.0]))
    later = version_evidence(logs, 1, SINCE, NOW + timedelta(seconds=1))
    assert later.requests == 3 and later.elapsed_s == 601.0


def test_files_written_before_latency_and_status_were_logged_still_count() -> None:
    new = records_frame([ok(1, "new", 1, [5.0], 3.0)], ["x"])
    old = records_frame([ok(2, "old", 1, [6.0, 7.0], 3.0)], ["x"])
    old = old.drop(columns=["latency_ms", "status"])
    read_back = log_frame(to_parquet(old))
    assert list(read_back["status"]) == ["ok", "ok"] and read_back["latency_ms"].isna().all()
    logs = pd.concat([log_frame(to_parquet(new)), read_back], ignore_index=True)
    evidence = version_evidence(logs, 1, SINCE, NOW)
    assert (evidence.requests, evidence.errors) == (2, 0)
    assert sum(evidence.latency_counts) == 1  # the old request's latency is unknown
    assert same(evidence.predictions, Moments.of([5.0, 6.0, 7.0]))
    assert version_evidence(old, 1, SINCE, NOW).requests == 1  # the frame itself, too
    assert "status" not in old.columns and with_log_defaults(logs) is logs  # nothing copied


def test_a_window_without_rows_of_a_version_is_empty_evidence() -> None:
    evidence = version_evidence(frame(ok(1, "a", 1, [1.0], 1.0)), 7, SINCE, NOW)
    assert (evidence.requests, evidence.errors) == (0, 0)
    assert (evidence.predictions.n, evidence.losses.n) == (0, 0)
    assert evidence.latency_counts == (0,) * BUCKETS
    empty = pd.DataFrame(columns=["ts", "request_id", "row", "version", "prediction"])
    assert version_evidence(empty, 1, SINCE, NOW).requests == 0


def test_moments_match_the_running_ones_on_many_rows() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(np.log(300_000), 0.4, 5000)
    records = [ok(i * 0.01, f"r{i}", 1, [float(v)], 2.0) for i, v in enumerate(values)]
    evidence = version_evidence(frame(*records), 1, SINCE, NOW)
    running = Moments.of(values.tolist())
    assert evidence.predictions.n == running.n == 5000
    assert evidence.predictions.mean == pytest.approx(running.mean, rel=1e-12)
    assert evidence.predictions.m2 == pytest.approx(running.m2, rel=1e-9)


def test_the_latest_label_wins() -> None:
    first = pd.DataFrame({"request_id": ["a", "b"], "row": [0, 0], "label": [1.0, 2.0],
                          "labelled_at": pd.to_datetime([1, 1], unit="s", utc=True)})  # fmt: skip
    fix = pd.DataFrame({"request_id": ["a"], "row": [0], "label": [9.0],
                        "labelled_at": pd.to_datetime([2], unit="s", utc=True)})  # fmt: skip
    for frames in ([first, fix], [fix, first], [latest_labels([]), first, fix]):
        labels = latest_labels(frames).set_index("request_id")["label"]
        assert labels.to_dict() == {"a": 9.0, "b": 2.0}


def test_naive_times_are_refused() -> None:
    logs = frame(ok(1, "a", 1, [1.0], 1.0))
    with pytest.raises(ValueError, match="timezone-aware"):
        version_evidence(logs, 1, SINCE.replace(tzinfo=None), NOW)


def test_a_multiclass_canary_is_scored_by_log_loss_and_watched_class_by_class() -> None:
    """Three classes: log loss on text labels (a number label reads as its class text), one
    probability mean per class; a canary that moves one class's probability is rolled back."""
    from tasks.decisions.canary import CanaryPolicy, decide_canary
    from tasks.release.window import Scoring

    rng = np.random.default_rng(0)
    scoring = Scoring.classifier(("a", "b", "2"))
    assert scoring.loss_name == "log loss" and len(scoring.watched) == 3

    def rows(version: int, shares: list[float], n: int = 400) -> list[LogRecord]:
        proba = rng.dirichlet(np.asarray(shares) * 50, n).tolist()
        return [LogRecord(at(i % 50), f"{version}-{i}", version, [[1.0]], [0.0], 2.0, "ok",
                          [p]) for i, p in enumerate(proba)]  # fmt: skip

    logs = records_frame(rows(1, [0.5, 0.3, 0.2]) + rows(2, [0.2, 0.3, 0.5]), ["x"])
    logs["label"] = ["a", 2.0, None, "zzz"] * (len(logs) // 4)
    stable = version_evidence(logs, 1, SINCE, NOW, scoring)
    canary = version_evidence(logs, 2, SINCE, NOW, scoring)
    assert stable.losses.n == 200  # "a" and 2.0 (class "2") score; None and "zzz" do not
    first = logs[(logs["version"] == 1) & (logs["label"] == "a")]["proba_0"]
    third = logs[(logs["version"] == 1) & (logs["label"] == 2.0)]["proba_2"]
    expected = -np.log(np.concatenate([first, third])).mean()
    assert math.isclose(stable.losses.mean, expected, rel_tol=1e-9)
    assert [round(m.mean, 1) for m in canary.class_probabilities] == [0.2, 0.3, 0.5]
    policy = CanaryPolicy(min_requests=10, min_samples=30)
    shift = {c.name: c for c in decide_canary(stable, canary, policy).checks}["prediction_shift"]
    assert "class 2 probability shift +5" in shift.detail and "of 3 classes" in shift.detail
    assert shift.status == "unknown"  # labels are arriving: the log loss judges the shift
    unlabelled = logs.drop(columns="label")
    evidence = [version_evidence(unlabelled, v, SINCE, NOW, scoring) for v in (1, 2)]
    verdict = decide_canary(*evidence, policy)
    assert verdict.action == "rollback" and "class 2 probability shift" in verdict.reasons[0]
