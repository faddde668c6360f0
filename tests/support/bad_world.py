"""A served model to throw bad input at, and the snapshot that proves nothing moved.

`bad_input_world` (one per session, shared by the bad-input modules of tests/reliability;
tests/conftest.py registers this file as a plugin, and those modules import only `World` from it,
for type checking) is a champion trained by the real retrain flow and put into service by the real
deploy flow on a real model server process, driven through LocalServingTarget. Tests enter
`world.environment()` so the flows they run find the same S3 server, model and model server.
`snapshot` records everything a bad input must not change: the registry's objects, versions
(numbers and sha256), aliases, alias history, the served routing, the registered events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass

import httpx
import pandas as pd
import pytest
from prefect import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.worker import EventsWorker

from infra.local_s3 import S3Server
from infra.local_stack import environment
from infra.model_server import ModelServer, start_model_server
from infra.prefect_server import PrefectServer
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import ServeOptions
from tasks.modelserver.client import LocalServingTarget
from tasks.registry.versions import Manifest, ModelRegistry, open_registry
from tasks.settings import Settings, get_settings


@dataclass
class World:
    settings: Settings
    env: dict[str, str]  # what points flows at this world's S3 server, model and model server
    registry: ModelRegistry
    server: ModelServer
    target: LocalServingTarget
    champion: Manifest
    good: pd.DataFrame  # the champion's training batch

    @property
    def name(self) -> str:
        return self.settings.model_name

    def environment(self) -> AbstractContextManager[None]:
        return environment(self.env)

    def upload(self, key: str, data: bytes) -> str:
        return upload(self.registry, key, data)

    def snapshot(self) -> Snapshot:
        return snapshot(self)

    def registered_versions(self) -> list[int]:
        return registered_versions(self.name)

    def predict(self, rows: pd.DataFrame) -> httpx.Response:
        url = f"{self.server.url}/v1/models/{self.name}:predict"
        features = self.champion.features
        return httpx.post(url, json={"instances": rows[features].to_dict("records")}, timeout=30)


def upload(registry: ModelRegistry, key: str, data: bytes) -> str:
    """Put `data` under datasets/<model>/ in the registry's bucket; the s3:// URI to train on."""
    path = f"datasets/{registry.name}/{key}"
    registry.store.put_bytes(path, data, "text/csv")
    return f"s3://{registry.store.bucket}/{path}"


@contextmanager
def served_world(s3: S3Server, prefix: str, options: ServeOptions | None = None) -> Iterator[World]:
    """A champion registered by `retrain` and served by `deploy` on its own model server."""
    from flows.deploy import deploy
    from flows.retrain import retrain

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        with environment({**s3.env(), "MLOPS_MODEL_NAME": name}):
            registry = open_registry(get_settings(), create_bucket=True)  # creates the bucket first
        server = start_model_server(s3.env(), name, options=options or ServeOptions())
        stack.callback(server.stop)
        env = {**s3.env(), "MLOPS_MODEL_NAME": name, "MLOPS_SERVING_URL": server.url}
        with environment(env):
            settings = get_settings()
            good = generate_house_prices(1500, seed=31)
            data = upload(registry, "good.csv", good.to_csv(index=False).encode())
            champion = retrain(data=data, reason="champion for the bad-input corpus")
            assert deploy(version=champion.version, reason="champion") == "first"
        target = LocalServingTarget(server.url, name)
        # The server stores events asynchronously: wait for the champion's, or the first case's
        # "before" snapshot may miss it and its "after" count it.
        deadline = time.monotonic() + 60
        while registered_versions(name) != [champion.version] and time.monotonic() < deadline:
            time.sleep(0.5)
        yield World(settings, env, registry, server, target, champion, good)


@pytest.fixture(scope="session")
def bad_input_world(s3_server: S3Server, prefect_server: PrefectServer) -> Iterator[World]:
    """One served champion for every bad-input module (each case proves it left it as it was)."""
    with served_world(s3_server, "bad-input") as world:
        yield world


@dataclass(frozen=True)
class Snapshot:
    keys: frozenset[str]  # every object under models/<name>/ but short-lived leases
    versions: tuple[tuple[int, str], ...]  # (number, sha256)
    aliases: tuple[tuple[str, int], ...]
    history: int
    routing: tuple[int | None, int | None, int, tuple[tuple[int, str], ...]]
    registered_events: int

    def describe(self) -> str:
        aliases = ", ".join(f"{alias}=v{version}" for alias, version in self.aliases)
        stable, canary, percent, _ = self.routing
        return (
            f"{len(self.keys)} objects, versions {[v for v, _ in self.versions]}, {aliases}, "
            f"{self.history} alias moves, serving v{stable} (canary {canary}, {percent}%), "
            f"{self.registered_events} registered event(s)"
        )


def registered_versions(name: str) -> list[int]:
    """The versions of mlops.model.registered events the Prefect server holds for `name`."""
    EventsWorker.drain_all(timeout=10, at_exit=False)  # send what this process emitted first
    event_filter = EventFilter(
        event=EventNameFilter(name=["mlops.model.registered"]),
        resource=EventResourceFilter(id=[f"mlops.model.{name}"]),
    )
    with get_client(sync_client=True) as client:
        events = client.read_events(filter=event_filter, limit=50).events
    return sorted(int(event.payload["version"]) for event in events)


def registered_events(name: str) -> int:
    return len(registered_versions(name))


def snapshot(world: World) -> Snapshot:
    registry, state = world.registry, world.target.state()
    keys = registry.store.list_keys(registry.prefix, recursive=True)
    loaded = state.detail.get("loaded", {})
    return Snapshot(
        keys=frozenset(key for key in keys if "/leases/" not in key),
        versions=tuple((m.version, m.sha256) for m in registry.versions()),
        aliases=tuple(sorted(registry.aliases().items())),
        history=len(registry.history()),
        routing=(
            state.stable_version,
            state.canary_version,
            state.canary_percent,
            tuple(sorted((int(v), str(sha)) for v, sha in loaded.items())),
        ),
        registered_events=registered_events(world.name),
    )
