"""The drift-check flow on a real Prefect server and S3: verdicts, reports, the event.

The serving-log windows are written by the real model server (a process on loopback) serving
the champion, and read back from S3 by the flow; the rows are sent with their sale prices
attached later as labels, as users' traffic would be (infra/traffic.py).
"""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.drift import DriftChecksFailed, drift_check, drift_daily
from flows.retrain import retrain
from infra.local_s3 import S3Server
from infra.model_server import ModelServer, start_model_server
from tasks.data.contract import DataContract
from tasks.data.loading import data_digest, load_csv
from tasks.data.synthetic import DriftSpec, generate_house_prices
from tasks.decisions.drift import DriftVerdict
from tasks.decisions.routing import Routing, ServeOptions
from tasks.drift.stages import ReferenceMissing
from tasks.modelserver.logs import attach_labels
from tasks.registry.versions import DataSummary, ModelRegistry, VersionNotFound
from tasks.s3 import connect
from tasks.settings import Settings, get_settings
from tests.support.keys import TEST_KEY
from tests.support.models import HouseModels
from tests.support.specs import spec_for
from tests.support.stack import events_named, publish_csv

pytestmark = pytest.mark.integration
WINDOW_ROWS = 2000
# Values the contract does not allow, which the model server accepts: (column, value, rows).
OFF_CONTRACT = [
    ("neighborhood", "lakeside", 120),  # 6% unknown categories > the contract's 2%: drift
    ("exterior_color", "green", 15),  # 0.75%: counted, tolerated
    ("size_sqft", 20_000.0, 100),  # above max 15000, 5% > 1%: drift
    ("distance_to_center_km", 150.0, 60),  # above max 100, 3% > 1%: drift
    ("condition", 0, 10),  # below min 1, 0.5%: counted, tolerated
    ("bedrooms", -1, 5),  # below min 0, 0.25%: counted, tolerated
]


@pytest.fixture
def champion(flow_env: Settings) -> ModelRegistry:
    data = publish_csv(flow_env, "train", generate_house_prices(2000, seed=31))
    manifest = retrain(data=data, reason="champion")
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.set_alias("champion", manifest.version, "test")
    return registry


def test_same_distribution_is_not_drift_and_emits_nothing(flow_env: Settings, champion) -> None:
    batch = publish_csv(flow_env, "same", generate_house_prices(2000, seed=32))
    verdict = drift_check(data=batch)
    assert verdict.status == "no_drift" and verdict.drifted_columns == []
    assert events_named("mlops.drift.detected", flow_env.model_name, timeout=3) == []


def test_drift_is_detected_named_reported_and_announced(flow_env: Settings, champion) -> None:
    batch = publish_csv(flow_env, "drifted", generate_house_prices(
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
    source = champion.manifest(1).data.source  # the training snapshot, not the CSV
    champion.store.delete(source.removeprefix(f"s3://{flow_env.bucket}/"))
    batch = publish_csv(flow_env, "any", generate_house_prices(500, seed=34))
    with pytest.raises(ReferenceMissing, match="reference of v1 is gone"):
        drift_check(data=batch)


def test_no_champion_is_a_clear_error(flow_env: Settings) -> None:
    with pytest.raises(VersionNotFound, match="has no champion"):
        drift_check(data="s3://mlops/none.csv")


def test_the_daily_check_covers_every_model_with_a_champion(
    flow_env: Settings, monkeypatch
) -> None:
    """drift-daily (the scheduled deployment) checks each model of the registry that has a
    champion, each in its own drift check; a model without one is skipped, and one model's
    failure fails the run only after the others were checked. A bucket of its own: the
    session's holds every other test's models."""
    monkeypatch.setenv("MLOPS_BUCKET", f"daily-{uuid.uuid4().hex[:10]}")
    suffix = flow_env.model_name[-8:]
    names = [f"a-{suffix}", f"b-{suffix}", f"c-{suffix}"]
    registries = {}
    for seed, name in enumerate(names):
        data = publish_csv(get_settings(), name, generate_house_prices(600, seed=40 + seed))
        manifest = retrain(data=data, model_name=name, reason="daily")
        registries[name] = ModelRegistry(connect(get_settings()), name, TEST_KEY)
        if name != names[2]:  # c has a version but no champion: nothing served to check
            registries[name].set_alias("champion", manifest.version, "test")
    assert drift_daily(window_hours=1) == {names[0]: "insufficient_data",
                                           names[1]: "insufficient_data"}  # fmt: skip
    source = registries[names[0]].manifest(1).data.source
    registries[names[0]].store.delete(source.removeprefix(f"s3://{get_settings().bucket}/"))
    with pytest.raises(DriftChecksFailed, match=f"1 of 2 failed: {names[0]}: ReferenceMissing"):
        drift_daily(window_hours=1)


@dataclass
class Served:
    """The champion on a real model server, for this test's model name."""

    registry: ModelRegistry
    server: ModelServer

    @property
    def name(self) -> str:
        return self.registry.name

    def send(self, rows: pd.DataFrame, batch: int = 100) -> None:
        """Every row once as V1 requests with ids, the logs flushed to S3, then the labels."""
        features = [column for column in rows.columns if column != "price"]
        labels = []
        with httpx.Client(base_url=self.server.url, timeout=60) as http:
            for start in range(0, len(rows), batch):
                chunk, request_id = rows.iloc[start : start + batch], uuid.uuid4().hex
                body = {"instances": chunk[features].to_dict("records")}
                answer = http.post(f"/v1/models/{self.name}:predict", json=body,
                                   headers={"x-request-id": request_id})  # fmt: skip
                assert answer.status_code == 200, answer.text
                labels += [{"request_id": request_id, "row": row, "label": float(price)}
                           for row, price in enumerate(chunk["price"])]  # fmt: skip
            assert http.post("/mlops/v1/logs/flush").json()["flushed"] is True
        attach_labels(self.registry.store, self.name, pd.DataFrame(labels))

    def report_json(self) -> dict:
        (key,) = [k for k in self.registry.store.list_keys(f"reports/{self.name}/drift/")
                  if k.endswith(".json")]  # fmt: skip
        return json.loads(self.registry.store.get_bytes(key))


@pytest.fixture
def served(
    flow_env: Settings, s3_server: S3Server, contract: DataContract, house_models: HouseModels
) -> Iterator[Served]:
    """A real model (trained once per session) registered as champion with the data it was
    trained on as its reference, served by a model server process that logs to S3."""
    frame = generate_house_prices(1500, seed=31)  # what house_models.get(31) trains on
    source = publish_csv(flow_env, "train", frame)
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    digest = data_digest(load_csv(source, registry.store))
    spec = spec_for(contract, digest=digest, rows=len(frame))
    spec = spec.model_copy(update={"data": DataSummary(digest=digest, rows=len(frame),
                                                       source=source)})  # fmt: skip
    version = registry.register(house_models.get(31).model, spec).version
    registry.set_alias("champion", version, "test")
    options = ServeOptions(routing=Routing(stable_version=version), log_flush_seconds=3600)
    server = start_model_server(s3_server.env(), registry.name, options=options)
    try:
        yield Served(registry, server)
    finally:
        server.stop()


def checked(**parameters) -> tuple[DriftVerdict, str]:
    """Run the flow; its verdict and the markdown artifact it published."""
    state = drift_check(return_state=True, **parameters)
    run_id = state.state_details.flow_run_id
    only_this_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=only_this_run)
    return state.result(), artifact.data


def test_logged_window_like_the_reference_is_not_drift(flow_env: Settings, served) -> None:
    served.send(generate_house_prices(WINDOW_ROWS, seed=32))
    verdict, markdown = checked(window_hours=1)
    assert (verdict.status, verdict.drifted_columns) == ("no_drift", [])
    assert verdict.judged_features == 9 and verdict.off_contract == {}
    assert "Outside the data contract" not in markdown
    columns = {c["name"]: c for c in served.report_json()["drift_check"]["columns"]}
    # Every logged row was read, and every label joined to its row.
    assert {c["current_rows"] for c in columns.values() if c["role"] != "prediction"} == {
        WINDOW_ROWS
    }
    assert columns["price"]["status"] == "judged"
    assert events_named("mlops.drift.detected", flow_env.model_name, timeout=3) == []


def test_shifted_logged_window_is_drift(flow_env: Settings, served) -> None:
    shift = DriftSpec(size_shift=0.4, age_shift_years=15, price_level=1.2)
    served.send(generate_house_prices(WINDOW_ROWS, seed=33, drift=shift))
    verdict, markdown = checked(window_hours=1)
    assert verdict.status == "drift"
    assert {"size_sqft", "age_years", "price"} <= set(verdict.drifted_columns)
    assert verdict.off_contract == {}  # shifted, but every value within the contract
    assert markdown.startswith("# Drift check: DRIFT")
    (event,) = events_named("mlops.drift.detected", flow_env.model_name)
    assert event.payload["data_uri"] is None and "size_sqft" in event.payload["summary"]


def off_contract_window() -> pd.DataFrame:
    """An unshifted window with OFF_CONTRACT's values, each put into its own rows."""
    window = generate_house_prices(WINDOW_ROWS, seed=35)
    order = np.random.default_rng(35).permutation(WINDOW_ROWS)
    start = 0
    for column, value, rows in OFF_CONTRACT:
        window.loc[order[start : start + rows], column] = value
        start += rows
    return window


def test_values_outside_the_contract_are_counted_and_drift_past_their_tolerance(
    flow_env: Settings, served
) -> None:
    served.send(off_contract_window())  # the server accepts every one of them
    verdict, markdown = checked(window_hours=1)
    counts = {
        name: (c.checked, c.unknown_categories, c.below_min, c.above_max)
        for name, c in verdict.off_contract.items()
    }
    assert counts == {
        "neighborhood": (WINDOW_ROWS, 120, 0, 0),
        "exterior_color": (WINDOW_ROWS, 15, 0, 0),
        "size_sqft": (WINDOW_ROWS, 0, 0, 100),
        "distance_to_center_km": (WINDOW_ROWS, 0, 0, 60),
        "condition": (WINDOW_ROWS, 0, 10, 0),
        "bedrooms": (WINDOW_ROWS, 0, 5, 0),
    }
    assert verdict.off_contract["neighborhood"].tolerated == 0.02  # the contract's own rule
    assert verdict.off_contract["neighborhood"].examples == ["'lakeside'"]
    assert verdict.off_contract["size_sqft"].examples == ["20000"]
    # Past the tolerated share they drift the column; three of nine features is dataset drift.
    drifted = set(verdict.drifted_columns)
    assert {"neighborhood", "size_sqft", "distance_to_center_km"} <= drifted
    assert not {"exterior_color", "condition", "bedrooms"} & drifted
    assert verdict.status == "drift"
    assert any(r.startswith("condition: ") and "10 below min" in r for r in verdict.reasons)

    assert "## Outside the data contract" in markdown
    assert (
        "- `neighborhood`: 120 of 2000 values outside the contract (120 unknown categories; "
        "6.0% > 2.0% tolerated; e.g. 'lakeside')" in markdown
    )
    assert "| **100 (5.0%)** |" in markdown and "| 15 (0.8%) |" in markdown
    stored = served.report_json()
    assert stored["metrics"]  # Evidently's report, with the exact pass beside it
    exact = {c["name"]: c["off_contract"] for c in stored["drift_check"]["columns"]}
    assert (exact["size_sqft"]["above_max"], exact["size_sqft"]["out_of_range"]) == (100, 100)
    assert exact["neighborhood"]["unknown_categories"] == 120
    assert stored["drift_check"]["verdict"]["off_contract"]["condition"]["below_min"] == 10
