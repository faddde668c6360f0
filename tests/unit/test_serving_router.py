"""Pure pieces of local serving: the routing decisions, request parsing, per-version counters."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from pydantic import ValidationError

from tasks.data.contract import DataContract
from tasks.decisions.routing import (
    Routing,
    bad_prediction_reason,
    binomial_bound,
    choose_version,
    judge_routing_change,
    routing_from_aliases,
    without_canary_traffic,
)
from tasks.modelserver.inputs import (
    BadRequest,
    feature_specs,
    probe_rows,
    rows_from_v1,
    rows_from_v2,
)
from tasks.modelserver.log_writer import LogRecord, records_frame
from tasks.modelserver.stats import VersionStats, histogram_quantile

ROW = {
    "size_sqft": 1800.0,
    "bedrooms": 3,
    "bathrooms": 2.0,
    "age_years": 12,
    "lot_size_sqft": 5000.0,
    "distance_to_center_km": 4.2,
    "condition": 3,
    "neighborhood": "suburbs",
    "exterior_color": "white",
}


@pytest.fixture(scope="module")
def specs(contract: DataContract):
    return feature_specs(contract.feature_names, contract)


# -- routing ---------------------------------------------------------------------------------
def test_routing_rejects_inconsistent_splits() -> None:
    with pytest.raises(ValidationError, match="needs a canary_version"):
        Routing(stable_version=1, canary_percent=10)
    with pytest.raises(ValidationError, match="both stable and canary"):
        Routing(stable_version=2, canary_version=2, canary_percent=10)
    with pytest.raises(ValidationError, match="stable version to fall back on"):
        Routing(canary_version=2, canary_percent=10)
    with pytest.raises(ValidationError):
        Routing(stable_version=1, canary_version=2, canary_percent=101)


def test_choose_version_follows_the_weight() -> None:
    routing = Routing(stable_version=1, canary_version=2, canary_percent=20)
    assert choose_version(routing, 0.0) == 2
    assert choose_version(routing, 0.1999) == 2
    assert choose_version(routing, 0.2) == 1
    assert choose_version(routing, 0.9999) == 1
    draws = random.Random(7)
    canary = sum(choose_version(routing, draws.random()) == 2 for _ in range(10_000))
    low, high = binomial_bound(10_000, 0.2)
    assert low <= canary <= high


def test_choose_version_edges() -> None:
    assert choose_version(Routing(), 0.5) is None
    assert choose_version(Routing(stable_version=3, canary_version=4), 0.0) == 3
    full = Routing(stable_version=3, canary_version=4, canary_percent=100)
    assert choose_version(full, 0.99999) == 4


def test_without_canary_traffic_keeps_versions() -> None:
    routing = without_canary_traffic(Routing(stable_version=1, canary_version=2, canary_percent=50))
    assert (routing.stable_version, routing.canary_version, routing.canary_percent) == (1, 2, 0)


def test_bad_prediction_reason() -> None:
    assert bad_prediction_reason([1.0, 2.0], 2) is None
    assert "non-finite" in bad_prediction_reason([1.0, math.nan], 2)
    assert "non-finite" in bad_prediction_reason([math.inf], 1)
    assert "1 predictions for 2 rows" in bad_prediction_reason([1.0], 2)


def test_judge_routing_change_refuses_failed_versions() -> None:
    split = Routing(stable_version=1, canary_version=2, canary_percent=10)
    assert judge_routing_change(split, {}, {}).ok
    refused = judge_routing_change(split, {}, {2: "IntegrityError: sha256 mismatch"})
    assert not refused.ok and "v2 failed to load" in refused.reasons[0]
    live = judge_routing_change(split, {2: "NaN"}, {})
    assert not live.ok and "failing live" in live.reasons[0]
    parked = Routing(stable_version=1, canary_version=2, canary_percent=0)
    assert judge_routing_change(parked, {2: "NaN"}, {}).ok
    assert not judge_routing_change(Routing(stable_version=2), {2: "NaN"}, {}).ok


# -- request bodies --------------------------------------------------------------------------
def test_v1_accepts_dicts_and_ordered_lists(specs) -> None:
    ordered = list(ROW.values())
    rows = rows_from_v1({"instances": [ROW, ordered]}, specs, max_batch=10)
    assert rows == [ordered, ordered]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"raw", "must be JSON"),
        ([1, 2], '"instances" list'),
        ({"instances": "x"}, "must be a list"),
        ({"instances": []}, "no instances"),
        ({"instances": [ROW] * 11}, "at most 10"),
        ({"instances": [{**ROW, "extra": 1}]}, "unknown fields ['extra']"),
        ({"instances": [{k: v for k, v in ROW.items() if k != "bedrooms"}]}, "['bedrooms']"),
        ({"instances": [[1, 2]]}, "has 2 values; expected 9"),
        ({"instances": [{**ROW, "size_sqft": "1800"}]}, "'size_sqft' must be a number"),
        ({"instances": [{**ROW, "bedrooms": False}]}, "'bedrooms' must be a number"),
        ({"instances": [{**ROW, "neighborhood": 1}]}, "'neighborhood' must be a string"),
        ({"instances": [{**ROW, "age_years": None}]}, "'age_years' is null"),
        ({"instances": [ROW, {**ROW, "condition": math.nan}]}, "instance 1: 'condition'"),
        ({"instances": ["x"]}, "got str"),
    ],
)
def test_v1_refusals_name_the_problem(specs, payload, fragment) -> None:
    with pytest.raises(BadRequest) as error:
        rows_from_v1(payload, specs, max_batch=10)
    assert fragment in str(error.value)


def _tensors(rows: list[dict], shape_extra: list[int] | None = None):
    return [(name, [len(rows), *(shape_extra or [])], [r[name] for r in rows]) for name in ROW]


def test_v2_tensors_become_rows(specs) -> None:
    rows = rows_from_v2(_tensors([ROW, ROW]), specs, max_batch=10)
    assert rows == [list(ROW.values())] * 2
    assert rows_from_v2(_tensors([ROW], [1]), specs, max_batch=10) == [list(ROW.values())]


def test_v2_refusals_name_the_problem(specs) -> None:
    tensors = _tensors([ROW])
    with pytest.raises(BadRequest, match="missing tensors"):
        rows_from_v2(tensors[1:], specs, 10)
    with pytest.raises(BadRequest, match="unknown tensors"):
        rows_from_v2([*tensors, ("color", [1], ["red"])], specs, 10)
    with pytest.raises(BadRequest, match="does not fit"):
        rows_from_v2([(tensors[0][0], [3], tensors[0][2]), *tensors[1:]], specs, 10)
    uneven = [(tensors[0][0], [2], [1.0, 2.0]), *tensors[1:]]
    with pytest.raises(BadRequest, match="differ in length"):
        rows_from_v2(uneven, specs, 10)
    with pytest.raises(BadRequest, match="at most 1 are allowed"):
        rows_from_v2(_tensors([ROW, ROW]), specs, 1)


def test_feature_specs_refuse_features_outside_the_contract(contract: DataContract) -> None:
    with pytest.raises(ValueError, match="not in the data contract"):
        feature_specs(["size_sqft", "pool"], contract)


def test_probe_rows_are_valid_requests(specs) -> None:
    probe = probe_rows(specs, count=16)
    assert len(probe) == 16
    assert rows_from_v1({"instances": probe}, specs, max_batch=16) == probe
    for spec, column in zip(specs, zip(*probe, strict=True), strict=True):
        if spec.numeric:
            assert min(column) >= (spec.low or 0) and len(set(column)) > 1
        else:
            assert set(column) <= set(spec.categories)


# -- counters --------------------------------------------------------------------------------
def test_histogram_quantile_interpolates() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert histogram_quantile([0, 0, 0, 0], bounds, 0.5) is None
    assert histogram_quantile([0, 10, 0, 0], bounds, 0.5) == pytest.approx(1.5)
    assert histogram_quantile([10, 0, 0, 0], bounds, 1.0) == pytest.approx(1.0)


def test_version_stats_summarise_predictions_and_latency() -> None:
    stats = VersionStats(version=2, reservoir_size=50, seed=1)
    values = [float(v) for v in range(1000)]
    for start in range(0, 1000, 10):
        stats.record(
            latency_ms=5.0 if start < 900 else 80.0, predictions=values[start : start + 10]
        )
    stats.record_error()
    snap = stats.snapshot()
    assert (snap.requests, snap.errors, snap.rows) == (101, 1, 1000)
    assert snap.prediction_count == 1000
    assert snap.prediction_mean == pytest.approx(statistics.fmean(values))
    assert snap.prediction_std == pytest.approx(statistics.stdev(values))
    assert len(snap.prediction_sample) == 50 and set(snap.prediction_sample) <= set(values)
    assert 4.5 <= snap.latency_ms_p50 <= 5.5
    assert 70 <= snap.latency_ms_p95 <= 90
    # The reservoir is a uniform sample, not the first or last values seen.
    assert 200 < statistics.fmean(snap.prediction_sample) < 800


def test_records_frame_has_one_row_per_instance() -> None:
    features = ["a", "b"]
    records = [
        LogRecord(1_700_000_000.0, "r1", 3, [[1.0, "x"], [2.0, "y"]], [10.0, 20.0], 4.5),
        LogRecord(1_700_000_001.0, "r2", 4, [[3.0, "z"]], [math.nan], 2.0, "error"),
        LogRecord(1_700_000_001.0, "r2", 3, [[3.0, "z"]], [30.0], 7.0),
    ]
    frame = records_frame(records, features)
    assert list(frame.columns) == [
        "ts", "request_id", "row", "version", "latency_ms", "status", "a", "b", "prediction"
    ]  # fmt: skip
    assert list(frame["request_id"]) == ["r1", "r1", "r2", "r2"]
    assert list(frame["row"]) == [0, 1, 0, 0]
    assert list(frame["version"]) == [3, 3, 4, 3]
    assert list(frame["b"]) == ["x", "y", "z", "z"]
    assert list(frame["status"]) == ["ok", "ok", "error", "ok"]
    assert list(frame["latency_ms"]) == [4.5, 4.5, 2.0, 7.0]
    assert str(frame["latency_ms"].dtype) == "float64"
    assert frame["prediction"].tolist()[:2] == [10.0, 20.0] and math.isnan(frame["prediction"][2])
    assert str(frame["ts"].dt.tz) == "UTC"


def test_records_logged_without_latency_or_status_read_as_ok_with_unknown_latency() -> None:
    frame = records_frame([LogRecord(1_700_000_000.0, "r1", 1, [[1.0]], [2.0])], ["a"])
    assert list(frame["status"]) == ["ok"] and math.isnan(frame["latency_ms"][0])


def test_a_restarted_server_serves_what_the_aliases_say() -> None:
    assert routing_from_aliases({}, 10) == Routing()
    assert routing_from_aliases({"previous": 1}, 10) == Routing()
    assert routing_from_aliases({"champion": 2, "previous": 1}, 10) == Routing(stable_version=2)
    both = routing_from_aliases({"champion": 2, "canary": 3}, 15)
    assert both == Routing(stable_version=2, canary_version=3, canary_percent=15)
    assert routing_from_aliases({"champion": 2, "canary": 2}, 15) == Routing(stable_version=2)
