"""Live traffic for the fault tests: real models behind the real model server, and clients that
remember every request id and whether it was answered, so the serving logs can be checked id by id.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from pandas.api.types import is_numeric_dtype
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from infra.local_s3 import S3Server
from infra.model_server import ModelServer, start_model_server
from tasks.data.contract import DataContract
from tasks.data.loading import data_digest
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import ServeOptions
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.versions import Manifest, ModelRegistry
from tasks.s3 import ObjectStore, connect
from tests.support.keys import TEST_KEY
from tests.support.specs import spec_for
from tests.support.stack import settings_for


@dataclass(frozen=True)
class Sent:
    """One request as the client saw it: time.monotonic() when it was sent and answered/failed."""

    request_id: str
    ok: bool
    started: float
    at: float
    version: str | None = None


def register_trained(registry: ModelRegistry, contract: DataContract, seed: int) -> Manifest:
    """A real, quick house-price model (linear, numeric features) on 500 synthetic rows.

    The project's own pipeline takes half a minute on a busy 2-core machine; these tests need a
    model the server loads, probes and serves, not a good one.
    """
    frame = generate_house_prices(500, seed=seed)
    numeric = [name for name in contract.feature_names if is_numeric_dtype(frame[name])]
    pick = ColumnTransformer([("numeric", "passthrough", numeric)])
    model = Pipeline([("pick", pick), ("linear", LinearRegression())])
    model.fit(frame[contract.feature_names], frame[contract.target.name])
    spec = spec_for(contract, digest=data_digest(frame), rows=len(frame))
    return registry.register(model, spec)


@dataclass
class Clients:
    """`threads` loopback clients sending one-row V1 requests, each with a fresh id, until stopped.

    A failed request is followed by a 20 ms pause, so a dead server is probed, not flooded.
    """

    url: str
    model: str
    instances: list[dict]
    threads: int = 2
    sent: list[Sent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self, offset: int) -> None:
        predict = f"{self.url}/v1/models/{self.model}:predict"
        with httpx.Client(timeout=5.0) as http:
            n = offset
            while not self._stop.is_set():
                request_id = f"req-{uuid.uuid4().hex}"
                body = {"instances": [self.instances[n % len(self.instances)]]}
                n += self.threads
                started = time.monotonic()
                try:
                    answer = http.post(predict, json=body, headers={"x-request-id": request_id})
                    ok = answer.status_code == 200
                    version = answer.headers.get("x-model-version")
                except httpx.HTTPError:
                    ok, version = False, None
                self.sent.append(Sent(request_id, ok, started, time.monotonic(), version))
                if not ok:
                    time.sleep(0.02)

    @contextmanager
    def running(self) -> Iterator[list[Sent]]:
        workers = [threading.Thread(target=self.run, args=(n,)) for n in range(self.threads)]
        for worker in workers:
            worker.start()
        try:
            yield self.sent
        finally:
            self._stop.set()
            for worker in workers:
                worker.join(30)


@dataclass
class ServedWorld:
    """A model server on one S3 server, a registry with real versions, and its log window."""

    server: ModelServer
    store: ObjectStore
    registry: ModelRegistry
    manifests: list[Manifest]
    instances: list[dict]
    flush_s: float
    since: datetime

    @property
    def model(self) -> str:
        return self.registry.name

    def traffic(self) -> AbstractContextManager[list[Sent]]:
        return Clients(self.server.url, self.model, self.instances).running()

    def flush(self) -> dict:
        return httpx.post(f"{self.server.url}/mlops/v1/logs/flush", timeout=60).json()


def serve_world(
    s3: S3Server,
    contract: DataContract,
    versions: int,
    options: ServeOptions,
    endpoint: str | None = None,
) -> ServedWorld:
    """Register `versions` real models on `s3`, then start a model server for them (reaching
    S3 at `endpoint` if given, e.g. through a proxy)."""
    store = connect(settings_for(s3))
    store.ensure_bucket()
    registry = ModelRegistry(store, f"fault-{uuid.uuid4().hex[:8]}", TEST_KEY)
    manifests = [register_trained(registry, contract, seed=40 + n) for n in range(versions)]
    features = contract.feature_names
    instances = generate_house_prices(400, seed=7)[features].to_dict("records")
    since = datetime.now(UTC) - timedelta(seconds=1)
    env = {**s3.env(), **({"MLOPS_S3_ENDPOINT": endpoint} if endpoint else {})}
    server = start_model_server(env, registry.name, options=options)
    return ServedWorld(
        server, store, registry, manifests, instances, options.log_flush_seconds, since
    )


def logged_once(store: ObjectStore, model: str, since: datetime) -> tuple[set, int]:
    """The request ids read back from S3, and the most times any one of them appears."""
    logs = read_serving_logs(store, model, since, datetime.now(UTC) + timedelta(seconds=1))
    counts = logs["request_id"].value_counts()
    return set(logs["request_id"]), int(counts.max()) if len(counts) else 0
