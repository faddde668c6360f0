"""Separate S3 identities on the real SeaweedFS and MinIO servers (infra/s3_identities.py).

The training identity writes the registry; the serving identity reads models and writes its
request logs, and every attempt it makes to change models/ is refused by the server itself
(AccessDenied) — checked object by object, S3 version by S3 version, afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from minio.error import S3Error

from infra.local_s3 import S3Server
from infra.model_server import start_model_server
from infra.s3_identities import S3Identities, S3Identity, create_identities
from tasks.data.contract import DataContract
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import Routing, ServeOptions
from tasks.modelserver.log_writer import ServingLogWriter
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.versions import Manifest, ModelRegistry, ModelSpec
from tasks.s3 import ObjectStore, S3AccessDenied, connect
from tasks.settings import get_settings
from tasks.training.model import train_model
from tests.support.specs import spec_for

pytestmark = pytest.mark.integration


def identity_spec(contract: DataContract) -> ModelSpec:
    return spec_for(contract, digest="identities", rows=600, metrics={"rmse": 1.0})


@pytest.fixture(scope="module")
def identities(any_s3_server: S3Server) -> S3Identities:
    return create_identities(any_s3_server)


@pytest.fixture(scope="module")
def trained(contract: DataContract) -> object:
    return train_model(generate_house_prices(600, seed=1), contract, seed=1).model


def store_as(identity: S3Identity) -> ObjectStore:
    return connect(get_settings(**_settings(identity)))


def _settings(identity: S3Identity) -> dict[str, str]:
    return {
        "s3_endpoint": identity.url,
        "s3_access_key": identity.access_key,
        "s3_secret_key": identity.secret_key,
    }


@dataclass
class Published:
    """v1 registered and made champion by the training identity; the serving view of it."""

    training: ModelRegistry
    serving: ModelRegistry
    manifest: Manifest
    model: object
    spec: ModelSpec
    kind: str


@pytest.fixture
def published(
    identities: S3Identities, any_s3_server: S3Server, trained, contract, model_name: str
) -> Published:
    training = ModelRegistry(store_as(identities.training), model_name)
    manifest = training.register(trained, identity_spec(contract))
    training.set_alias("champion", manifest.version, "first model, by the training identity")
    serving = ModelRegistry(store_as(identities.serving), model_name)
    return Published(
        training, serving, manifest, trained, identity_spec(contract), any_s3_server.kind
    )


def registry_state(registry: ModelRegistry) -> dict[str, object]:
    """Everything a reader can see of one model, down to each object's S3 version ids."""
    store = registry.store
    return {
        "versions": [(m.version, m.sha256) for m in registry.versions()],
        "aliases": registry.aliases(),
        "history": [(m.alias, m.from_version, m.to_version, m.at) for m in registry.history()],
        "objects": {key: store.version_ids(key) for key in store.list_keys(registry.prefix)},
    }


def refusal(attempt: Callable[[], object]) -> str:
    """The error code the server answered one attempt with; the test fails if it was allowed."""
    try:
        attempt()
    except S3AccessDenied as error:
        assert isinstance(error.__cause__, S3Error)
        return error.__cause__.code
    except S3Error as error:
        return error.code
    pytest.fail("the S3 server allowed the serving identity to do it")


# -- the attacks: each returns the server's answer to every attempt ---------------------------
def put_model_file(p: Published) -> list[str]:
    payload = p.serving.store.get_bytes(f"{p.serving.prefix}v1/model.joblib")
    return [
        refusal(lambda: p.serving.store.put_bytes(f"{p.serving.prefix}v2/model.joblib", payload)),
        refusal(lambda: p.serving.register(p.model, p.spec)),
    ]


def overwrite_manifest(p: Published) -> list[str]:
    key = f"{p.serving.prefix}v1/"
    forged = p.manifest.model_copy(update={"metrics": {"rmse": 0.0}, "reason": "forged"})
    return [
        refusal(lambda: p.serving.store.put_bytes(key + "manifest.json", forged.model_dump_json().encode())),
        refusal(lambda: p.serving.store.put_bytes(key + "model.joblib", b"not the model")),
    ]  # fmt: skip


def move_alias(p: Published) -> list[str]:
    pointer = b'{"alias": "champion", "version": 7}'
    return [
        refusal(lambda: p.serving.set_alias("champion", None, "serving clears the champion")),
        refusal(lambda: p.serving.store.put_bytes(f"{p.serving.prefix}aliases/champion.json", pointer)),
        refusal(lambda: p.serving.store.put_bytes(f"{p.serving.prefix}history/x.json", b"{}")),
    ]  # fmt: skip


def delete_version(p: Published) -> list[str]:
    key = f"{p.serving.prefix}v1/manifest.json"
    s3_version = p.training.store.version_ids(key)[-1]
    client, bucket = p.serving.store.client, p.serving.store.bucket
    return [
        refusal(lambda: p.serving.store.delete(key)),
        refusal(lambda: p.serving.store.delete(f"{p.serving.prefix}v1/model.joblib")),
        refusal(lambda: client.remove_object(bucket, key, version_id=s3_version)),
    ]


ATTACKS: dict[str, tuple[str, Callable[[Published], list[str]]]] = {
    "put a model file": (
        "PUT models/<m>/v2/model.joblib directly, then ModelRegistry.register as serving",
        put_model_file,
    ),
    "overwrite a manifest": (
        "PUT a forged v1/manifest.json (rmse 0.0) and a new v1/model.joblib as serving",
        overwrite_manifest,
    ),
    "move an alias": (
        "set_alias('champion', None) as serving, then PUT aliases/champion.json -> v7 and a "
        "history entry directly",
        move_alias,
    ),
    "delete a version": (
        "DELETE v1/manifest.json, v1/model.joblib, and v1/manifest.json's S3 version id",
        delete_version,
    ),
}


@pytest.mark.parametrize("case", list(ATTACKS), ids=lambda case: case.replace(" ", "-"))
def test_serving_identity_cannot_change_the_registry(
    case: str, published: Published, reliability
) -> None:
    done, attack = ATTACKS[case]
    before = registry_state(published.training)
    codes = attack(published)
    after = registry_state(published.training)
    manifest, _ = published.serving.load_bytes(1)  # sha256 checked against the manifest

    assert codes and set(codes) == {"AccessDenied"}, codes
    assert after == before
    assert manifest == published.manifest and published.serving.alias("champion") == 1
    objects = before["objects"]
    reliability(
        "security",
        f"serving identity tries to {case} ({published.kind})",
        done=done,
        expected="the S3 server answers AccessDenied to every attempt; versions, aliases, "
        "history and every object's S3 versions unchanged; v1 still loads",
        observed=f"{len(codes)}/{len(codes)} attempts {', '.join(sorted(set(codes)))}; "
        f"versions {[v for v, _ in after['versions']]}, aliases {after['aliases']}, "
        f"{len(after['history'])} history entries, {len(objects)} objects with "
        f"{sum(map(len, objects.values()))} S3 versions identical before/after; v1 loads "
        f"as serving, sha256 {manifest.sha256[:12]}",
    )


def test_serving_identity_reads_only_models(published: Published, reliability) -> None:
    data_key = f"data/{published.training.name}/train.csv"
    published.training.store.put_bytes(data_key, b"x,y\n1,2\n")
    codes = [
        refusal(lambda: published.serving.store.get_bytes(data_key)),
        refusal(lambda: list(published.serving.store.list_keys("data/"))),
        refusal(lambda: list(published.serving.store.list_keys("serving-logs/"))),
    ]
    assert set(codes) == {"AccessDenied"}, codes
    reliability(
        "security",
        f"serving identity reads outside models/ ({published.kind})",
        done="GET a training CSV under data/, LIST data/ and LIST serving-logs/ as serving",
        expected="AccessDenied for each: the serving identity reads models/ only",
        observed=f"{len(codes)}/{len(codes)} attempts {', '.join(sorted(set(codes)))}",
    )


def test_training_writes_and_serving_loads_and_logs(
    published: Published, contract: DataContract, reliability
) -> None:
    training, serving = published.training, published.serving
    second = training.register(published.model, published.spec)
    move = training.set_alias("champion", second.version, "the training identity promotes v2")
    manifest, model = serving.load(serving.alias("champion"))  # sha256 checked before unpickling
    rows = generate_house_prices(5, seed=3)[contract.feature_names]
    predictions = [float(p) for p in model.predict(rows)]
    since = datetime.now(UTC) - timedelta(seconds=1)
    writer = ServingLogWriter(serving.store, serving.name, contract.feature_names, 60.0).start()
    writer.log("req-identities", manifest.version, rows.values.tolist(), predictions)
    flushed = writer.flush()
    writer.close()
    logged = read_serving_logs(training.store, serving.name, since, datetime.now(UTC))

    assert (move.from_version, move.to_version) == (1, 2) and manifest == second
    assert flushed and writer.last_error is None and writer.files_written == 1
    assert logged["prediction"].tolist() == predictions
    reliability(
        "security",
        f"training writes, serving loads and logs ({published.kind})",
        done="training identity registers v2 and moves champion 1->2; serving identity loads "
        "the champion and flushes a serving-log file; training reads the log back",
        expected="all allowed: the registry, the model load and the request logs keep working",
        observed=f"champion v{move.from_version}->v{move.to_version}; serving loaded "
        f"v{manifest.version} (sha256 {manifest.sha256[:12]} verified); "
        f"{writer.files_written} log file, {len(logged)} rows read back by training",
    )


@pytest.fixture
def model_server_as_serving(published: Published, identities: S3Identities) -> Iterator:
    options = ServeOptions(routing=Routing(stable_version=1), log_flush_seconds=60)
    server = start_model_server(identities.serving.env(), published.serving.name, options=options)
    try:
        yield server
    finally:
        server.stop()


def test_model_server_runs_as_the_serving_identity(
    published: Published, model_server_as_serving, contract: DataContract, reliability
) -> None:
    server = model_server_as_serving
    instances = generate_house_prices(8, seed=4)[contract.feature_names].to_dict("records")
    started = time.perf_counter()
    answer = httpx.post(
        f"{server.url}/v1/models/{published.serving.name}:predict",
        json={"instances": instances},
        timeout=30,
    )
    flush = httpx.post(f"{server.url}/mlops/v1/logs/flush", timeout=60).json()
    elapsed = time.perf_counter() - started
    since = datetime.now(UTC) - timedelta(minutes=5)
    logged = read_serving_logs(published.training.store, published.serving.name, since,
                               datetime.now(UTC))  # fmt: skip

    assert answer.status_code == 200, answer.text
    assert flush == {"flushed": True, "last_error": None}
    assert len(logged) == len(instances) and set(logged["version"]) == {1}
    reliability(
        "security",
        f"model server runs as the serving identity ({published.kind})",
        done="started the KServe model server with only the serving keys, served v1, "
        "predicted 8 houses and flushed its request log",
        expected="v1 loads and verifies, predictions answer 200, the log reaches S3",
        observed=f"HTTP {answer.status_code} with {len(answer.json()['predictions'])} "
        f"predictions; flush {flush}; {len(logged)} logged rows of v1 read back by training "
        f"({elapsed:.2f}s predict+flush)",
    )
