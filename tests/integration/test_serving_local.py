"""The local KServe model server, for real: a server process on 127.0.0.1, SeaweedFS, real models.

One server (and one registry with five versions) per module keeps the run short; every test sets
the split it needs first. Versions: v1 and v2 are real trained models, v3 is tampered with after
registration, v4 answers NaN only for houses with 10+ bedrooms (passes the probe, fails live),
v5 answers NaN always (fails the probe).
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from infra.local_s3 import S3Server
from infra.model_server import ModelServer, start_model_server
from tasks.data.contract import DataContract
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import Routing, ServeOptions, binomial_bound
from tasks.modelserver.client import ServingTargetError
from tasks.modelserver.logs import attach_labels, read_serving_logs
from tasks.modelserver.model import LocalServingTarget
from tasks.registry.versions import Manifest, ModelRegistry, ModelSpec
from tasks.s3 import ObjectStore, connect
from tasks.settings import get_settings
from tasks.training.model import train_model
from tests.support.keys import TEST_KEY
from tests.support.specs import spec_for

pytestmark = pytest.mark.integration


@dataclass
class World:
    server: ModelServer
    store: ObjectStore
    registry: ModelRegistry
    manifests: dict[int, Manifest]
    models: dict[int, object]
    frame: pd.DataFrame
    features: list[str]

    def predict_url(self) -> str:
        return f"{self.server.url}/v1/models/{self.registry.name}:predict"

    def route(self, **routing: object) -> httpx.Response:
        return httpx.put(f"{self.server.url}/mlops/v1/routing", json=routing, timeout=60)

    def instances(self, start: int, count: int) -> list[dict]:
        return self.frame[self.features].iloc[start : start + count].to_dict("records")


def _spec(contract: DataContract, rows: int) -> ModelSpec:
    return spec_for(contract, digest="test", rows=rows, metrics={})


def _nan_model(frame: pd.DataFrame, features: list[str], target: np.ndarray, func, inverse):
    """A bedrooms-only linear model behind a target transform that can turn predictions NaN."""
    pick = ColumnTransformer([("bedrooms", "passthrough", ["bedrooms"])])
    regressor = Pipeline([("pick", pick), ("linear", LinearRegression())])
    model = TransformedTargetRegressor(
        regressor=regressor, func=func, inverse_func=inverse, check_inverse=False
    )
    return model.fit(frame[features], target)


def _register_models(registry: ModelRegistry, contract: DataContract, frame: pd.DataFrame):
    features = contract.feature_names
    other = generate_house_prices(1500, seed=2)
    models = {
        1: train_model(frame, contract, seed=1).model,
        2: train_model(other, contract, seed=2).model,
    }
    manifests = {v: registry.register(models[v], _spec(contract, 1500)) for v in (1, 2)}
    manifests[3] = registry.register(models[1], _spec(contract, 1500))
    # Tamper after registration: the file no longer matches the manifest's sha256.
    registry.store.put_bytes(f"models/{registry.name}/v3/model.joblib", b"not the registered model")
    few = frame[frame["bedrooms"] <= 9]
    # sqrt(9.5 - bedrooms): fine up to 9 bedrooms (and on the probe batch), NaN from 10 on.
    target = np.sqrt((9.5 - few["bedrooms"].to_numpy()) * 1e10)
    live_nan = _nan_model(few, features, target, np.square, np.sqrt)
    manifests[4] = registry.register(live_nan, _spec(contract, len(few)))
    # The regressor learns -price, so every prediction is sqrt(negative): NaN.
    always_nan = _nan_model(few, features, few["price"].to_numpy(), np.negative, np.sqrt)
    manifests[5] = registry.register(always_nan, _spec(contract, len(few)))
    return manifests, models


@pytest.fixture(scope="module")
def world(s3_server: S3Server, contract: DataContract) -> Iterator[World]:
    name = f"serve-{uuid.uuid4().hex[:8]}"
    settings = get_settings(
        s3_endpoint=s3_server.url,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
    )
    store = connect(settings)
    store.ensure_bucket()
    registry = ModelRegistry(store, name, TEST_KEY)
    frame = generate_house_prices(1500, seed=1)
    manifests, models = _register_models(registry, contract, frame)
    options = ServeOptions(routing=Routing(stable_version=1), max_batch=500, log_flush_seconds=2)
    server = start_model_server(s3_server.env(), name, options=options)
    try:
        yield World(server, store, registry, manifests, models, frame, contract.feature_names)
    finally:
        server.stop()


def test_v1_and_v2_predictions_match_the_model(world: World) -> None:
    assert world.route(stable_version=1).status_code == 200
    rows = world.frame[world.features].iloc[:20]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = world.models[1].predict(rows)

    by_name = httpx.post(world.predict_url(), json={"instances": rows.to_dict("records")})
    in_order = httpx.post(world.predict_url(), json={"instances": rows.values.tolist()})
    for response in (by_name, in_order):
        assert response.status_code == 200, response.text
        assert response.headers["x-model-version"] == "1"
        assert response.json()["model_version"] == 1
        np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-9)

    inputs = [
        {
            "name": column,
            "shape": [len(rows)],
            "datatype": "BYTES" if rows[column].dtype == object else "FP64",
            "data": rows[column].tolist(),
        }
        for column in world.features
    ]
    v2 = httpx.post(
        f"{world.server.url}/v2/models/{world.registry.name}/infer",
        json={"id": "v2-check", "inputs": inputs},
    )
    assert v2.status_code == 200, v2.text
    body = v2.json()
    assert body["model_version"] == "1" and v2.headers["x-model-version"] == "1"
    assert body["id"] == "v2-check"
    np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-9)


def test_health_and_metrics_endpoints(world: World) -> None:
    base = world.server.url
    assert httpx.get(f"{base}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{base}/v1/models/{world.registry.name}").json()["ready"] is True
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200 and "request_predict_seconds" in metrics.text


def test_split_honours_the_weight(world: World) -> None:
    assert world.route(stable_version=1, canary_version=2, canary_percent=20).status_code == 200
    served: Counter[str] = Counter()

    def client(offset: int) -> None:
        with httpx.Client(timeout=30) as http:
            for i in range(250):
                instance = world.instances((offset * 250 + i) % 1400, 1)
                response = http.post(world.predict_url(), json={"instances": instance})
                assert response.status_code == 200, response.text
                served[response.headers["x-model-version"]] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    low, high = binomial_bound(1000, 0.20)
    assert sum(served.values()) == 1000
    assert low <= served["2"] <= high, served
    stats = httpx.get(f"{world.server.url}/mlops/v1/stats").json()["versions"]
    assert stats["2"]["requests"] >= served["2"] and stats["2"]["latency_ms_p95"] > 0
    assert stats["2"]["prediction_count"] >= served["2"]
    assert len(stats["1"]["prediction_sample"]) <= 1000 and stats["1"]["prediction_std"] > 0


def test_routing_changes_under_load_drop_nothing(world: World) -> None:
    assert world.route(stable_version=1).status_code == 200
    stop = threading.Event()
    failures: list[str] = []
    seen: Counter[str] = Counter()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                try:
                    response = http.post(
                        world.predict_url(), json={"instances": world.instances(7, 2)}
                    )
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text}")
                    seen[response.headers.get("x-model-version", "?")] += 1
                except httpx.HTTPError as error:
                    failures.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for split in [
            {"stable_version": 1, "canary_version": 2, "canary_percent": 50},
            {"stable_version": 2, "canary_version": 1, "canary_percent": 10},
            {"stable_version": 2},
            {"stable_version": 1, "canary_version": 2, "canary_percent": 0},
            {"stable_version": 1},
        ]:
            assert world.route(**split).status_code == 200
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:5]
    assert seen["1"] > 0 and seen["2"] > 0 and sum(seen.values()) > 50


def test_tampered_canary_is_refused_and_stable_keeps_serving(world: World) -> None:
    assert world.route(stable_version=1).status_code == 200
    refused = world.route(stable_version=1, canary_version=3, canary_percent=50)
    assert refused.status_code == 409
    assert "sha256" in refused.json()["error"] and "v3" in refused.json()["error"]
    state = httpx.get(f"{world.server.url}/mlops/v1/routing").json()
    assert state["routing"] == {"stable_version": 1, "canary_version": None, "canary_percent": 0}
    assert "3" not in state["loaded"]
    for _ in range(20):
        response = httpx.post(world.predict_url(), json={"instances": world.instances(0, 1)})
        assert response.status_code == 200 and response.headers["x-model-version"] == "1"


def test_canary_failing_its_probe_never_gets_traffic(world: World) -> None:
    assert world.route(stable_version=1).status_code == 200
    refused = world.route(stable_version=1, canary_version=5, canary_percent=100)
    assert refused.status_code == 409 and "non-finite" in refused.json()["error"]
    response = httpx.post(world.predict_url(), json={"instances": world.instances(0, 1)})
    assert response.headers["x-model-version"] == "1"


def test_canary_answering_nan_live_loses_its_traffic_at_once(world: World) -> None:
    assert world.route(stable_version=1, canary_version=4, canary_percent=100).status_code == 200
    fine = httpx.post(world.predict_url(), json={"instances": world.instances(0, 1)})
    assert fine.status_code == 200 and fine.headers["x-model-version"] == "4"

    big_house = {**world.instances(0, 1)[0], "bedrooms": 11}
    response = httpx.post(world.predict_url(), json={"instances": [big_house]})
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    assert np.isfinite(response.json()["predictions"][0])

    state = httpx.get(f"{world.server.url}/mlops/v1/routing").json()
    assert state["routing"]["canary_percent"] == 0 and "non-finite" in state["failed"]["4"]
    after = httpx.post(world.predict_url(), json={"instances": world.instances(0, 1)})
    assert after.headers["x-model-version"] == "1"
    assert httpx.get(f"{world.server.url}/mlops/v1/stats").json()["versions"]["4"]["errors"] == 1
    again = world.route(stable_version=1, canary_version=4, canary_percent=10)
    assert again.status_code == 409 and "failing live" in again.json()["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"{not json", "application/json", "Unrecognized request format"),
        (b"plain words", "text/plain", "must be JSON"),
        (b'{"instances": []}', "application/json", "no instances"),
        (b'{"rows": [[1]]}', "application/json", '"instances"'),
        (b'{"instances": {"a": 1}}', "application/json", "must be a list"),
        (b'{"instances": [{"size_sqft": 1200}]}', "application/json", "missing fields"),
        (b'{"instances": [[1, 2, 3]]}', "application/json", "expected 9"),
        (b'{"instances": [7]}', "application/json", "object keyed by feature name"),
    ],
)
def test_malformed_requests_get_4xx_naming_the_problem(
    world: World, body: bytes, content_type: str, fragment: str
) -> None:
    response = httpx.post(world.predict_url(), content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert fragment in response.json()["error"]


def test_wrong_types_and_huge_batches_get_400(world: World) -> None:
    instance = world.instances(0, 1)[0]
    for field, value, fragment in [
        ("size_sqft", "big", "must be a number"),
        ("bedrooms", True, "must be a number"),
        ("neighborhood", 3, "must be a string"),
        ("age_years", None, "is null"),
    ]:
        response = httpx.post(world.predict_url(), json={"instances": [{**instance, field: value}]})
        assert response.status_code == 400 and fragment in response.json()["error"], response.text
    huge = httpx.post(world.predict_url(), json={"instances": [instance] * 501})
    assert huge.status_code == 400 and "at most 500" in huge.json()["error"]
    v2 = httpx.post(
        f"{world.server.url}/v2/models/{world.registry.name}/infer", json={"inputs": "x"}
    )
    assert v2.status_code == 422
    bad_routing = world.route(stable_version=1, canary_percent=30)
    assert bad_routing.status_code == 422 and "canary_version" in bad_routing.text


def test_logs_land_in_s3_and_join_labels(world: World) -> None:
    assert world.route(stable_version=1).status_code == 200
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = [f"req-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    answers = {}
    for n, request_id in enumerate(ids):
        response = httpx.post(
            world.predict_url(),
            json={"instances": world.instances(100 + n, 1)},
            headers={"x-request-id": request_id},
        )
        assert response.headers["x-request-id"] == request_id
        answers[request_id] = response.json()["predictions"][0]
    assert httpx.post(f"{world.server.url}/mlops/v1/logs/flush").json()["flushed"] is True
    labels = pd.DataFrame({"request_id": ids[:3], "label": [1.0, 2.0, 3.0]})
    key = attach_labels(world.store, world.registry.name, labels)
    assert key.startswith(f"serving-logs/{world.registry.name}/labels/")

    logs = read_serving_logs(world.store, world.registry.name, since, datetime.now(UTC))
    mine = logs[logs["request_id"].isin(ids)].set_index("request_id")
    assert sorted(mine.index) == sorted(ids)
    assert (mine["version"] == 1).all()
    for request_id in ids:
        assert mine.loc[request_id, "prediction"] == pytest.approx(answers[request_id])
    assert mine.loc[ids[0], "size_sqft"] == pytest.approx(world.frame["size_sqft"].iloc[100])
    assert list(mine.loc[ids, "label"].iloc[:3]) == [1.0, 2.0, 3.0]
    assert mine.loc[ids[3:], "label"].isna().all()
    stale = read_serving_logs(world.store, world.registry.name, since - timedelta(days=3), since)
    assert not stale["request_id"].isin(ids).any()
    # Windows with no labels yet (the truth comes later) read as unlabelled rows, also when
    # the only log file in the window holds rows from just before it:
    fresh_since, fresh_id = datetime.now(UTC), f"fresh-{uuid.uuid4().hex[:8]}"
    httpx.post(
        world.predict_url(),
        json={"instances": world.instances(7, 1)},
        headers={"x-request-id": fresh_id},
    )
    after_request = datetime.now(UTC)
    assert httpx.post(f"{world.server.url}/mlops/v1/logs/flush").json()["flushed"] is True
    fresh = read_serving_logs(world.store, world.registry.name, fresh_since, datetime.now(UTC))
    assert list(fresh["request_id"]) == [fresh_id] and fresh["label"].isna().all()
    assert read_serving_logs(
        world.store, world.registry.name, after_request, datetime.now(UTC)
    ).empty
    # Files written before the window are not even downloaded (they would not parse):
    day = (since - timedelta(hours=1)).strftime("%Y-%m-%d")
    old = (since - timedelta(hours=1)).strftime("%H%M%S%f")
    prefix = f"serving-logs/{world.registry.name}"
    world.store.put_bytes(f"{prefix}/date={day}/{old}-deadbeef.parquet", b"not parquet")
    world.store.put_bytes(f"{prefix}/labels/{day.replace('-', '')}T{old}-dead.parquet", b"nope")
    again = read_serving_logs(world.store, world.registry.name, since, datetime.now(UTC))
    assert sorted(again[again["request_id"].isin(ids)]["request_id"]) == sorted(ids)


def test_logs_are_flushed_on_shutdown_and_target_drives_the_split(
    world: World, s3_server: S3Server
) -> None:
    """A second server with a one-hour flush interval: only the shutdown flush can write."""
    options = ServeOptions(log_flush_seconds=3600)  # starts serving nothing
    server = start_model_server(s3_server.env(), world.registry.name, options=options)
    since = datetime.now(UTC) - timedelta(seconds=1)
    request_id = f"shutdown-{uuid.uuid4().hex[:8]}"
    predict_url = f"{server.url}/v1/models/{world.registry.name}:predict"
    try:
        target = LocalServingTarget(server.url, world.registry.name)
        assert not target.state().ready and target.state().stable_version is None
        early = httpx.post(predict_url, json={"instances": world.instances(0, 1)})
        assert early.status_code == 503
        deployed = target.deploy_stable(world.manifests[1])
        assert deployed.ready and deployed.stable_version == 1
        state = target.start_canary(world.manifests[2], 30)
        assert (state.stable_version, state.canary_version, state.canary_percent) == (1, 2, 30)
        assert target.set_canary_percent(60).canary_percent == 60
        assert target.promote_canary().stable_version == 2
        target.start_canary(world.manifests[1], 10)
        rolled = target.rollback_canary()
        assert (rolled.stable_version, rolled.canary_version, rolled.canary_percent) == (2, None, 0)
        with pytest.raises(ServingTargetError, match="sha256"):
            target.start_canary(world.manifests[3], 10)
        assert target.deploy_stable(world.manifests[1]).stable_version == 1
        response = httpx.post(
            predict_url,
            json={"instances": world.instances(3, 2)},
            headers={"x-request-id": request_id},
        )
        assert response.status_code == 200
    finally:
        assert server.stop() == 0, server.log_tail()
    logs = read_serving_logs(world.store, world.registry.name, since, datetime.now(UTC))
    assert (logs["request_id"] == request_id).sum() == 2
