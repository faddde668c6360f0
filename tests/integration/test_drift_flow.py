"""The drift-check flow on a real Prefect server and S3: verdicts, reports, the event."""

import io

import pytest

from flows.drift import drift_check
from flows.retrain import retrain
from tasks.data.synthetic import DriftSpec, generate_house_prices
from tasks.drift.stages import ReferenceMissing
from tasks.registry.versions import ModelRegistry, VersionNotFound
from tasks.s3 import connect
from tasks.settings import Settings
from tests.support.stack import events_named

pytestmark = pytest.mark.integration


def publish(settings: Settings, name: str, frame) -> str:
    store = connect(settings)
    store.ensure_bucket()
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    store.put_bytes(f"datasets/{settings.model_name}/{name}.csv", buffer.getvalue().encode())
    return f"s3://{settings.bucket}/datasets/{settings.model_name}/{name}.csv"


@pytest.fixture
def champion(flow_env: Settings) -> ModelRegistry:
    data = publish(flow_env, "train", generate_house_prices(2000, seed=31))
    manifest = retrain(data=data, reason="champion")
    registry = ModelRegistry(connect(flow_env), flow_env.model_name)
    registry.set_alias("champion", manifest.version, "test")
    return registry


def test_same_distribution_is_not_drift_and_emits_nothing(flow_env: Settings, champion) -> None:
    batch = publish(flow_env, "same", generate_house_prices(2000, seed=32))
    verdict = drift_check(data=batch)
    assert verdict.status == "no_drift" and verdict.drifted_columns == []
    assert events_named("mlops.drift.detected", flow_env.model_name, timeout=3) == []


def test_drift_is_detected_named_reported_and_announced(flow_env: Settings, champion) -> None:
    batch = publish(flow_env, "drifted", generate_house_prices(
        2000, seed=33, drift=DriftSpec(size_shift=0.4, age_shift_years=15, price_level=1.2)))  # fmt: skip
    verdict = drift_check(data=batch)
    assert verdict.status == "drift"
    assert {"size_sqft", "age_years", "price"} <= set(verdict.drifted_columns)
    (event,) = events_named("mlops.drift.detected", flow_env.model_name)
    assert event.payload["data_uri"] == batch
    assert "size_sqft" in event.payload["summary"]
    report = event.payload["report_url"].removeprefix(f"s3://{flow_env.bucket}/")
    # Reports stay out of the version's folder, which KServe downloads for every pod.
    assert report.startswith(f"reports/{flow_env.model_name}/drift/"), report
    assert not any("/drift/" in key for key in champion.store.list_keys("models/"))
    assert champion.store.get_bytes(report).lstrip().startswith(b"<!DOCTYPE html>")
    assert champion.store.exists(report.replace(".html", ".json"))


def test_empty_window_is_insufficient_not_drift(flow_env: Settings, champion) -> None:
    verdict = drift_check(window_hours=1)  # no serving logs at all
    assert verdict.status == "insufficient_data"
    assert events_named("mlops.drift.detected", flow_env.model_name, timeout=3) == []


def test_missing_reference_is_a_clear_error(flow_env: Settings, champion) -> None:
    champion.store.delete(f"datasets/{flow_env.model_name}/train.csv")
    batch = publish(flow_env, "any", generate_house_prices(500, seed=34))
    with pytest.raises(ReferenceMissing, match="reference of v1 is gone"):
        drift_check(data=batch)


def test_no_champion_is_a_clear_error(flow_env: Settings) -> None:
    with pytest.raises(VersionNotFound, match="has no champion"):
        drift_check(data="s3://mlops/none.csv")
