"""Training sets: snapshotted by content, built from labelled traffic, deferred when too small.

Real S3 (SeaweedFS), a real Prefect server and the real model server writing serving logs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pandas as pd
import pytest

from flows.deploy import deploy
from flows.drift import drift_check
from flows.retrain import retrain
from infra.model_server import start_model_server
from infra.traffic import Traffic
from tasks.data.synthetic import DriftSpec, generate_house_prices
from tasks.decisions.routing import ServeOptions
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.datasets import read_snapshot
from tasks.registry.versions import ModelRegistry
from tasks.s3 import connect
from tasks.settings import Settings
from tests.support.keys import TEST_KEY
from tests.support.prefect_faults import wait_until
from tests.support.stack import events_named, publish_csv

pytestmark = pytest.mark.integration


@pytest.fixture
def champion(flow_env: Settings) -> ModelRegistry:
    data = publish_csv(flow_env, "first", generate_house_prices(2000, seed=61))
    manifest = retrain(data=data, reason="first model")
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.set_alias("champion", manifest.version, "test")
    return registry


def test_deleting_the_original_csv_changes_nothing_for_drift_or_history(
    flow_env: Settings, champion: ModelRegistry
) -> None:
    champion.store.delete(f"datasets/{flow_env.model_name}/first.csv")
    batch = publish_csv(flow_env, "same", generate_house_prices(2000, seed=62))
    assert drift_check(data=batch).status == "no_drift"  # the reference is the snapshot
    assert [m.to_version for m in champion.history()] == [1]


def test_a_changed_snapshot_is_refused_by_name(flow_env: Settings, champion: ModelRegistry) -> None:
    from tasks.drift.stages import ReferenceMissing

    source = champion.manifest(1).data.source
    key = source.removeprefix(f"s3://{flow_env.bucket}/")
    tampered = read_snapshot(champion.store, source).head(10)
    buffer = io.BytesIO()
    tampered.to_parquet(buffer, index=False)
    champion.store.put_bytes(key, buffer.getvalue())
    batch = publish_csv(flow_env, "any", generate_house_prices(500, seed=63))
    with pytest.raises(ReferenceMissing, match="does not match its name"):
        drift_check(data=batch)


def test_too_few_labels_defer_the_retrain_without_failing(
    flow_env: Settings, champion: ModelRegistry
) -> None:
    state = retrain(reason="drift: scheduled check", return_state=True)
    assert state.is_completed() and state.name == "Deferred", state
    assert "0 labelled traffic rows" in state.message and "of 500 needed" in state.message
    (event,) = events_named("mlops.retrain.deferred", flow_env.model_name)
    assert event.payload["labelled_rows"] == 0 and event.payload["needed"] == 500
    assert champion.alias("champion") == 1 and [m.version for m in champion.versions()] == [1]


@pytest.fixture
def serving(flow_env: Settings, s3_server, monkeypatch) -> Iterator[str]:
    server = start_model_server(
        {**s3_server.env(), "MLOPS_MODEL_NAME": flow_env.model_name},
        flow_env.model_name,
        options=ServeOptions(log_flush_seconds=0.5),
    )
    monkeypatch.setenv("MLOPS_SERVING_URL", server.url)
    try:
        yield server.url
    finally:
        server.stop()


def test_a_retrain_without_data_learns_from_drifted_labelled_traffic(
    flow_env: Settings, champion: ModelRegistry, serving: str, monkeypatch
) -> None:
    monkeypatch.setenv("MLOPS_TRAINING_SET__MIN_LABELLED_ROWS", "400")
    deploy(version=1, reason="serve v1")
    rows = generate_house_prices(3000, seed=64, drift=DriftSpec(price_level=1.2, size_shift=0.3))
    rows.loc[rows.index[:40], "neighborhood"] = (
        "atlantis"  # accepted by the server, not the contract
    )
    with Traffic(serving, flow_env.model_name, rows, "price", champion.store) as users:
        wait_until("600 requests", lambda: users.report.sent >= 600, 120)
    since = pd.Timestamp(0, tz="UTC")
    wait_until(
        "2,000 labelled rows logged",
        lambda: read_serving_logs(champion.store, flow_env.model_name, since,
                                  pd.Timestamp.now(tz="UTC"))["label"].notna().sum() >= 2000,
        30,
    )  # fmt: skip
    manifest = retrain(reason="drift: scheduled check")
    snapshot = read_snapshot(champion.store, manifest.data.source, manifest.data.digest)
    traffic = snapshot[snapshot["origin"] == "traffic"]
    reference = snapshot[snapshot["origin"] == "reference"]
    logged = read_serving_logs(
        champion.store, flow_env.model_name, pd.Timestamp(0, tz="UTC"), pd.Timestamp.now(tz="UTC")
    )
    assert len(traffic) >= 400 and set(traffic["request_id"]) <= set(logged["request_id"])
    assert "atlantis" not in set(traffic["neighborhood"])  # out-of-contract rows left out
    assert 0 < len(reference) <= len(traffic)  # the reference capped at half of the set
    assert (manifest.version, manifest.parent) == (2, 1)
