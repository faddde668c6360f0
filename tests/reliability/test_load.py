"""Sustained concurrent load on the real local model server while the canary weight changes
and a rollback happens: no request may fail, and the latency percentiles are recorded.

Bounded in time and count, loopback only. V1 and V2 requests are mixed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest

from infra.model_server import ModelServer, start_model_server
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import Routing, ServeOptions
from tasks.modelserver.model import LocalServingTarget
from tasks.registry.versions import ModelRegistry
from tasks.release.acts import roll_back, roll_out
from tasks.s3 import connect
from tasks.training.model import train_model
from tests.support.keys import TEST_KEY
from tests.support.specs import spec_for
from tests.support.stack import settings_for

pytestmark = pytest.mark.integration

CLIENTS = 8
MAX_REQUESTS = 30_000
ROWS_PER_REQUEST = 4


@dataclass
class Load:
    """CLIENTS threads sending requests back to back; each answer is (start, latency, status,
    version). Stops at `stop()`, or after MAX_REQUESTS in all."""

    url: str
    model: str
    rows: list[dict]
    answers: list[tuple[float, float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _client(self, index: int) -> None:
        v1 = f"{self.url}/v1/models/{self.model}:predict"
        v2 = f"{self.url}/v2/models/{self.model}/infer"
        names = list(self.rows[0])
        with httpx.Client(timeout=30.0) as http:
            n = index
            while not self._stop.is_set() and len(self.answers) < MAX_REQUESTS:
                chunk = [self.rows[(n + k) % len(self.rows)] for k in range(ROWS_PER_REQUEST)]
                n += CLIENTS
                if index % 2:
                    url, body = v1, {"instances": chunk}
                else:
                    inputs = [
                        {"name": name, "shape": [len(chunk)], "datatype": _v2_type(chunk, name),
                         "data": [row[name] for row in chunk]}
                        for name in names
                    ]  # fmt: skip
                    url, body = v2, {"id": uuid.uuid4().hex, "inputs": inputs}
                started = time.monotonic()
                try:
                    response = http.post(url, json=body)
                    status, version = response.status_code, response.headers.get("x-model-version")
                except httpx.HTTPError as error:
                    status, version = 0, type(error).__name__
                self.answers.append((started, time.monotonic() - started, status, version or "?"))

    @property
    def running(self):
        return _running(self)

    def stop(self) -> None:
        self._stop.set()


def _v2_type(chunk: list[dict], name: str) -> str:
    return "BYTES" if isinstance(chunk[0][name], str) else "FP64"


@contextmanager
def _running(load: Load) -> Iterator[Load]:
    threads = [threading.Thread(target=load._client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        load.stop()
        for thread in threads:
            thread.join(60)


@pytest.fixture(scope="module")
def served(s3_server, contract) -> Iterator[tuple[ModelRegistry, ModelServer, list[dict]]]:
    store = connect(settings_for(s3_server))
    store.ensure_bucket()
    registry = ModelRegistry(store, f"load-{uuid.uuid4().hex[:8]}", TEST_KEY)
    frame = generate_house_prices(1500, seed=11)
    spec = spec_for(contract, digest="load", rows=len(frame))
    for seed in (1, 2):
        registry.register(train_model(frame, contract, seed=seed).model, spec)
    registry.set_alias("champion", 1, "load test baseline")
    options = ServeOptions(routing=Routing(stable_version=1), log_flush_seconds=2)
    server = start_model_server(s3_server.env(), registry.name, options=options)
    rows = frame[contract.feature_names].head(200).to_dict("records")
    yield registry, server, rows
    server.stop()


def test_no_request_fails_while_the_canary_moves_and_rolls_back(
    served, prefect_server, reliability
) -> None:
    registry, server, rows = served
    target = LocalServingTarget(server.url, registry.name)
    marks: dict[str, float] = {}
    with Load(server.url, registry.name, rows).running as load:
        time.sleep(3)
        marks["canary"] = time.monotonic()
        roll_out.fn(registry, target, registry.manifest(2), 10, "load test canary")
        time.sleep(3)
        target.set_canary_percent(50)
        marks["50%"] = time.monotonic()
        time.sleep(3)
        roll_back.fn(registry, target, "load test rollback", canary_version=2)
        marks["rolled back"] = time.monotonic()
        time.sleep(3)
    answers = load.answers
    failed = [a for a in answers if a[2] != 200]
    latencies = np.array([a[1] for a in answers]) * 1000
    during = Counter(a[3] for a in answers if marks["50%"] <= a[0] < marks["rolled back"])
    after = Counter(a[3] for a in answers if a[0] >= marks["rolled back"])
    span = max(a[0] + a[1] for a in answers) - min(a[0] for a in answers)
    assert not failed, Counter((a[2], a[3]) for a in failed)
    assert during["2"] > 0 and during["1"] > 0, during  # the split really served both
    assert set(after) == {"1"}, after  # nothing reached the canary once rollback returned
    assert registry.alias("canary") is None and target.state().canary_version is None
    p50, p99, worst = np.percentile(latencies, [50, 99, 100])
    reliability(
        "load",
        "sustained load through canary 10% → 50% → rollback",
        done=f"{CLIENTS} loopback clients (V1 and V2 mixed, {ROWS_PER_REQUEST} rows each) for "
        f"{span:.1f}s while the canary went live at 10%, moved to 50% and was rolled back",
        expected="zero failed requests; after the rollback returns, only the stable version answers",
        observed=f"{len(answers)} requests ({len(answers) / span:.0f}/s), {len(failed)} failed; "
        f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms; at 50%: "
        f"v1 {during['1']}, v2 {during['2']}; after rollback: {dict(after)}",
    )
