"""The canary window read back from real serving logs: the real model server on loopback logs to
the session's S3 server (SeaweedFS) while a client sends traffic, and the window is polled as the
canary analysis polls it. Labels are attached later, as the label feed attaches them.

Versions: v1 and v2 are quick linear models (tests/support/live_traffic.py); v3 answers NaN for
houses with 10+ bedrooms only, so it passes its probe and fails live, once, on purpose.
"""

from __future__ import annotations

import threading
import time
import uuid
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
from tasks.data.contract import DataContract
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import ServeOptions
from tasks.modelserver.client import LocalServingTarget
from tasks.modelserver.logs import (
    attach_labels,
    label_file_keys,
    log_file_keys,
    log_frame,
    read_serving_logs,
)
from tasks.registry.versions import Manifest
from tasks.release.window import CanaryWindow
from tasks.s3 import ObjectStore, connect
from tests.support.live_traffic import ServedWorld, serve_world
from tests.support.specs import spec_for
from tests.support.stack import settings_for

pytestmark = pytest.mark.integration


class CountingStore(ObjectStore):
    """The session's S3 store, counting the objects fetched: every call still goes to S3."""

    def __init__(self, store: ObjectStore) -> None:
        super().__init__(store.client, store.bucket, store.endpoint)
        self.fetched: Counter[str] = Counter()

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        self.fetched[key] += 1
        return super().get_bytes(key, version_id)


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it."""

    request_id: str
    version: int
    predictions: list[float]


def register_nan_for_big_houses(world: ServedWorld, contract: DataContract) -> Manifest:
    """sqrt of a line in bedrooms that turns negative from 10 bedrooms on: NaN there only."""
    frame = generate_house_prices(500, seed=5)
    few = frame[frame["bedrooms"] <= 9]
    pick = ColumnTransformer([("bedrooms", "passthrough", ["bedrooms"])])
    model = TransformedTargetRegressor(
        regressor=Pipeline([("pick", pick), ("linear", LinearRegression())]),
        func=np.square,
        inverse_func=np.sqrt,
        check_inverse=False,
    )
    target = np.sqrt((9.5 - few["bedrooms"].to_numpy()) * 1e10)
    model.fit(few[contract.feature_names], target)
    return world.registry.register(model, spec_for(contract, digest="nan", rows=len(few)))


@pytest.fixture
def world(s3_server: S3Server, contract: DataContract) -> Iterator[ServedWorld]:
    served = serve_world(s3_server, contract, 2, ServeOptions(log_flush_seconds=0.5))
    try:
        yield served
    finally:
        served.server.stop()


def send(http: httpx.Client, world: ServedWorld, instances: list[dict]) -> Answer:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    response = http.post(
        f"{world.server.url}/v1/models/{world.model}:predict",
        json={"instances": instances},
        headers={"x-request-id": request_id},
    )
    assert response.status_code == 200, response.text
    version = int(response.headers["x-model-version"])
    return Answer(request_id, version, response.json()["predictions"])


def traffic(world: ServedWorld, answers: list[Answer], count: int) -> None:
    """`count` requests, every third with two rows, paced so the window is polled meanwhile."""
    with httpx.Client(timeout=30) as http:
        for n in range(count):
            rows = 2 if n % 3 == 0 else 1
            answers.append(send(http, world, world.instances[n : n + rows]))
            time.sleep(0.02)


def served_by(answers: list[Answer], version: int) -> list[Answer]:
    return [a for a in answers if a.version == version]


def test_window_counts_both_versions_from_the_logs_reading_each_file_once(
    world: ServedWorld, contract: DataContract
) -> None:
    target = LocalServingTarget(world.server.url, world.model)
    stable, canary = world.manifests[0], register_nan_for_big_houses(world, contract)
    target.deploy_stable(stable)
    with httpx.Client(timeout=30) as http:  # before the canary: outside its window
        before = [send(http, world, world.instances[:1]) for _ in range(5)]
    since = datetime.now(UTC)
    target.start_canary(canary, 50)
    store = CountingStore(world.store)
    window = CanaryWindow(store, world.model, since)

    answers: list[Answer] = []
    client = threading.Thread(target=traffic, args=(world, answers, 150))
    client.start()
    looks = []
    while client.is_alive():
        looks.append(window.evidence(stable.version, canary.version, datetime.now(UTC)))
        time.sleep(0.2)
    client.join()
    # The canary fails live on a two-row batch with a 10-bedroom house; stable answers it.
    target.set_canary_percent(100)
    with httpx.Client(timeout=30) as http:
        big = {**world.instances[0], "bedrooms": 10}
        failover = send(http, world, [world.instances[1], big])
    assert failover.version == stable.version and np.isfinite(failover.predictions).all()
    assert target.state().canary_percent == 0
    assert world.flush()["flushed"] is True
    old, new = window.evidence(stable.version, canary.version, datetime.now(UTC))

    mine = served_by(answers, stable.version)
    theirs = served_by(answers, canary.version)
    assert len(mine) + len(theirs) == 150 and mine and theirs
    assert (old.requests, old.errors) == (len(mine) + 1, 0)
    assert sum(old.latency_counts) == old.requests
    stable_predictions = [p for a in [*mine, failover] for p in a.predictions]
    assert old.predictions.n == len(stable_predictions)
    assert old.predictions.mean == pytest.approx(np.mean(stable_predictions), rel=1e-9)
    assert (new.requests, new.errors) == (len(theirs) + 1, 1)
    assert sum(new.latency_counts) == len(theirs)  # the failed request has no answer's latency
    canary_predictions = [p for a in theirs for p in a.predictions]
    assert new.predictions.n == len(canary_predictions)
    assert new.predictions.mean == pytest.approx(np.mean(canary_predictions), rel=1e-9)
    assert old.elapsed_s > 3 and new.losses.n == old.losses.n == 0

    # Polled while traffic flowed: counts only grow, and each file was fetched exactly once.
    assert len(looks) >= 5 and looks[-1][1].requests > looks[0][1].requests
    for earlier, later in zip(looks, [*looks[1:], (old, new)], strict=True):
        assert later[0].requests >= earlier[0].requests
        assert later[1].requests >= earlier[1].requests
    files = log_file_keys(world.store, world.model, since, datetime.now(UTC))
    assert len(files) >= 4 and set(store.fetched) == set(files) == window.read_keys
    assert set(store.fetched.values()) == {1}
    for key in set(world.store.list_keys(f"serving-logs/{world.model}/date=")) - set(files):
        assert (log_frame(world.store.get_bytes(key))["ts"] < since).all()  # named before it

    # The logs themselves: the failover left the canary's error rows and stable's answers.
    logs = read_serving_logs(world.store, world.model, since, datetime.now(UTC))
    assert not logs["request_id"].isin({a.request_id for a in before}).any()
    rows = logs[logs["request_id"] == failover.request_id].set_index(["version", "row"])
    assert sorted(rows.index) == [(v, r) for v in (stable.version, canary.version) for r in (0, 1)]
    assert (rows.loc[canary.version, "status"] == "error").all()
    assert rows.loc[canary.version, "prediction"].isna().all()
    assert (rows.loc[stable.version, "status"] == "ok").all()
    assert list(rows.loc[stable.version, "prediction"]) == pytest.approx(failover.predictions)
    latency = rows["latency_ms"]
    assert np.isfinite(latency).all() and (latency > 0).all()
    assert latency.loc[stable.version].min() >= latency.loc[canary.version].max()
    answered = logs[logs["request_id"].isin({a.request_id for a in answers})]
    assert (answered["status"] == "ok").all() and (answered["latency_ms"] > 0).all()

    # Labels arrive later, for some rows of each version and for the failed-over request.
    labelled = [*mine[:10], *theirs[:10], failover]
    truth = pd.DataFrame(
        [
            {"request_id": a.request_id, "row": row, "label": p + 1000.0 * (n + 1)}
            for n, a in enumerate(labelled)
            for row, p in enumerate(a.predictions)
        ]
    )
    attach_labels(world.store, world.model, truth)
    old, new = window.evidence(stable.version, canary.version, datetime.now(UTC))
    ranks = {a.request_id: n + 1 for n, a in enumerate(labelled)}
    stable_losses = [1000.0 * ranks[a.request_id] for a in [*mine[:10], failover]
                     for _ in a.predictions]  # fmt: skip
    canary_losses = [1000.0 * ranks[a.request_id] for a in theirs[:10] for _ in a.predictions]
    assert old.losses.n == len(stable_losses)  # the canary's error rows are not scored
    assert old.losses.mean == pytest.approx(np.mean(stable_losses), rel=1e-9)
    assert new.losses.n == len(canary_losses)
    assert new.losses.mean == pytest.approx(np.mean(canary_losses), rel=1e-9)

    # A corrected label replaces the first one.
    first = theirs[0]
    fix = pd.DataFrame({"request_id": [first.request_id], "label": [first.predictions[0]]})
    attach_labels(world.store, world.model, fix)
    corrected = window.evidence(stable.version, canary.version, datetime.now(UTC))[1]
    canary_losses[0] = 0.0
    assert corrected.losses.n == len(canary_losses)
    assert corrected.losses.mean == pytest.approx(np.mean(canary_losses), rel=1e-9)
    labels = label_file_keys(world.store, world.model, since)
    assert len(labels) == 2 and set(labels) <= set(store.fetched)
    assert set(store.fetched.values()) == {1}
    assert window.poll() == 0  # nothing new: nothing fetched
    assert set(store.fetched.values()) == {1}


def test_listing_starts_at_the_window_on_seaweedfs_and_minio(
    any_s3_server: S3Server, model_name: str
) -> None:
    """Log files are named by their newest row, label files by their write: both listings start
    at `since` (S3's start-after), and later days' log folders are listed whole."""
    store = connect(settings_for(any_s3_server))
    store.ensure_bucket()
    logs, labels = f"serving-logs/{model_name}/date=", f"serving-logs/{model_name}/labels/"
    names = [
        f"{logs}2025-02-28/235959000000-a.parquet",
        f"{logs}2025-03-01/120000499999-b.parquet",
        f"{logs}2025-03-01/120000500000-c.parquet",  # newest row at `since`: in
        f"{logs}2025-03-01/130000000000-d.parquet",
        f"{logs}2025-03-01/zz-notes.txt",
        f"{logs}2025-03-02/000000000000-e.parquet",
        f"{labels}20250301T120000499999-f.parquet",
        f"{labels}20250301T120000500000-g.parquet",
        f"{labels}20250302T000000000000-h.parquet",
    ]
    for name in names:
        store.put_bytes(name, b"")
    since = datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    until = since + timedelta(days=1)
    assert log_file_keys(store, model_name, since, until) == [names[2], names[3], names[5]]
    assert log_file_keys(store, model_name, since, since) == [names[2], names[3]]
    assert label_file_keys(store, model_name, since) == [names[7], names[8]]
    assert label_file_keys(store, model_name) == names[6:]
