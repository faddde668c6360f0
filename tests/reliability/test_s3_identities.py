"""Separate S3 identities on the real SeaweedFS and MinIO servers (infra/s3_identities.py).

The training identity writes the registry but cannot change the bucket's versioning; the serving
identity of a model reads that model and writes its request logs, and every attempt it makes to
change models/, or to touch another model's files or logs, is refused by the server itself
(AccessDenied) — checked object by object, S3 version by S3 version, afterwards.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
from minio.commonconfig import ENABLED
from minio.error import S3Error
from minio.versioningconfig import SUSPENDED, VersioningConfig

from infra.local_s3 import S3Server
from infra.model_server import start_model_server
from infra.s3_identities import (
    S3Identities,
    S3Identity,
    add_serving_identity,
    create_identities,
)
from tasks.data.contract import DataContract
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import Routing, ServeOptions
from tasks.modelserver.log_writer import ServingLogWriter
from tasks.modelserver.logs import attach_labels, logs_prefix, read_serving_logs
from tasks.registry.versions import Manifest, ModelRegistry, ModelSpec
from tasks.s3 import ObjectStore, S3AccessDenied, VersioningNotEnabled, connect
from tasks.settings import get_settings
from tasks.training.model import train_model
from tests.support.specs import spec_for

pytestmark = pytest.mark.integration
# This module's manifest key: its registries sign with it and its model server verifies with it.
KEY_HEX = secrets.token_hex(32)


def identity_spec(contract: DataContract) -> ModelSpec:
    return spec_for(contract, digest="identities", rows=600, metrics={"rmse": 1.0})


@pytest.fixture(scope="module")
def training_identity(any_s3_server: S3Server) -> S3Identity:
    return create_identities(any_s3_server, f"m-{uuid.uuid4().hex[:10]}").training


@pytest.fixture
def identities(
    any_s3_server: S3Server, training_identity: S3Identity, model_name: str
) -> S3Identities:
    """The training identity and the serving identity of this test's model (one per model)."""
    return S3Identities(training_identity, add_serving_identity(any_s3_server, model_name))


@pytest.fixture(scope="module")
def trained(contract: DataContract) -> object:
    return train_model(generate_house_prices(600, seed=1), contract, seed=1).model


def store_as(identity: S3Identity | S3Server, bucket: str = "mlops") -> ObjectStore:
    return connect(get_settings(**_settings(identity), bucket=bucket))


def _settings(identity: S3Identity | S3Server) -> dict[str, str]:
    return {
        "s3_endpoint": identity.url,
        "s3_access_key": identity.access_key,
        "s3_secret_key": identity.secret_key,
    }


def registry_as(identity: S3Identity, model: str) -> ModelRegistry:
    return ModelRegistry(store_as(identity), model, KEY_HEX.encode())


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
    training = registry_as(identities.training, model_name)
    manifest = training.register(trained, identity_spec(contract))
    training.set_alias("champion", manifest.version, "first model, by the training identity")
    serving = registry_as(identities.serving, model_name)
    return Published(
        training, serving, manifest, trained, identity_spec(contract), any_s3_server.kind
    )


@pytest.fixture
def other_model(published: Published, identities: S3Identities) -> ModelRegistry:
    """Another model, v1 champion, by the training identity. Its name extends the served one
    (`<m>-b`): a policy scoped by a bare name prefix (`models/<m>*`) would let it through."""
    other = registry_as(identities.training, f"{published.training.name}-b")
    manifest = other.register(published.model, published.spec)
    other.set_alias("champion", manifest.version, "another model, by the training identity")
    return other


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
    pytest.fail("the S3 server allowed the identity to do it")


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


def test_serving_identity_reads_only_its_own_model(
    published: Published, other_model: ModelRegistry, reliability
) -> None:
    serving, other = published.serving.store, other_model.prefix
    data_key = f"data/{published.training.name}/train.csv"
    published.training.store.put_bytes(data_key, b"x,y\n1,2\n")
    own_bookkeeping = [  # what the server never reads: history, index (as training wrote them)
        next(published.training.store.list_keys(f"{published.training.prefix}{folder}/"))
        for folder in ("history", "index")
    ]
    codes = [
        refusal(lambda: serving.get_bytes(data_key)),
        refusal(lambda: list(serving.list_keys("data/"))),
        refusal(lambda: list(serving.list_keys("serving-logs/"))),
        refusal(lambda: list(serving.list_keys("models/"))),
        refusal(lambda: list(serving.list_keys(published.serving.prefix))),
        *(refusal(lambda key=key: serving.get_bytes(key)) for key in own_bookkeeping),
        refusal(lambda: serving.get_bytes(f"{other}v1/model.joblib")),
        refusal(lambda: serving.get_bytes(f"{other}v1/manifest.json")),
        refusal(lambda: serving.get_bytes(f"{other}aliases/champion.json")),
        refusal(lambda: list(serving.list_keys(f"{other}v1/"))),
        refusal(lambda: ModelRegistry(serving, other_model.name, KEY_HEX.encode()).load(1)),
    ]
    assert set(codes) == {"AccessDenied"}, codes
    reliability(
        "security",
        f"serving identity of model A reads outside model A ({published.kind})",
        done="as A's serving identity: GET a training CSV; LIST data/, serving-logs/, models/ "
        "and all of models/A/; GET A's history and index objects; GET model B's model file, "
        "manifest and champion alias, LIST models/B/v1/, load B v1 through the registry "
        "(B is named A-b, so a bare name-prefix policy would match it)",
        expected="AccessDenied for each: a serving identity reads its own model's aliases and "
        "version folders only",
        observed=f"{len(codes)}/{len(codes)} attempts {', '.join(sorted(set(codes)))}",
    )


def test_serving_identity_writes_only_its_own_request_logs(
    published: Published, other_model: ModelRegistry, contract: DataContract, reliability
) -> None:
    serving, model, other = published.serving.store, published.serving.name, other_model.name
    rows = generate_house_prices(3, seed=5)[contract.feature_names]
    writer = ServingLogWriter(serving, other, contract.feature_names, 60.0).start()
    writer.log("req-b", 1, rows.values.tolist(), [1.0, 2.0, 3.0])
    flushed = writer.flush()
    writer.close(timeout=5)
    labels = pd.DataFrame({"request_id": ["req-a"], "row": [0], "label": [1.0]})
    codes = [
        refusal(lambda: serving.put_bytes(f"{logs_prefix(other)}date=2024-01-02/x.parquet", b"")),
        refusal(lambda: attach_labels(serving, model, labels)),
        refusal(lambda: serving.put_bytes(f"{logs_prefix(model)}labels/x.parquet", b"")),
        refusal(lambda: serving.put_bytes("serving-logs/x.parquet", b"")),
    ]
    training = published.training.store
    left = [*training.list_keys(logs_prefix(other)), *training.list_keys(logs_prefix(model))]

    assert not flushed and "access denied" in (writer.last_error or ""), writer.last_error
    assert set(codes) == {"AccessDenied"}, codes
    assert left == [], left
    reliability(
        "security",
        f"serving identity of model A writes another model's logs or labels ({published.kind})",
        done="as A's serving identity: flush a ServingLogWriter for model B; PUT a log file "
        "under serving-logs/B/, attach labels to A's logs (and PUT one directly), PUT outside "
        "any model's logs",
        expected="the writer reports the refusal and keeps nothing on S3; AccessDenied for each "
        "PUT; no object under serving-logs/A/ or serving-logs/B/ afterwards",
        observed=f"flush {flushed} ({writer.last_error}); {len(codes)}/{len(codes)} attempts "
        f"{', '.join(sorted(set(codes)))}; {len(left)} objects under either log prefix",
    )


def test_training_identity_cannot_change_bucket_versioning(
    any_s3_server: S3Server, identities: S3Identities, model_name: str, reliability
) -> None:
    root, training = store_as(any_s3_server), store_as(identities.training)
    client, bucket = training.client, training.bucket
    codes = [
        refusal(lambda: client.set_bucket_versioning(bucket, VersioningConfig(SUSPENDED))),
        refusal(lambda: client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))),
    ]
    status = root.client.get_bucket_versioning(bucket).status
    training.ensure_bucket(versioning=True)  # every flow does: it reads, sees Enabled, moves on
    # A bucket the operator left unversioned (here: suspended with the root keys): flows stop.
    spare = f"versioning-{uuid.uuid4().hex[:8]}"
    spare_training = store_as(create_identities(any_s3_server, model_name, spare).training, spare)
    store_as(any_s3_server, spare).client.set_bucket_versioning(spare, VersioningConfig(SUSPENDED))
    with pytest.raises(VersioningNotEnabled) as refused:
        spare_training.ensure_bucket(versioning=True)
    left = root.client.get_bucket_versioning(spare).status
    store_as(any_s3_server, spare).ensure_bucket(versioning=True)  # the root keys may: the stack
    restored = root.client.get_bucket_versioning(spare).status

    assert codes == ["AccessDenied", "AccessDenied"] and status == ENABLED
    assert f"python -m infra.minio_setup --bucket {spare}" in str(refused.value), refused.value
    assert isinstance(refused.value.__cause__, S3AccessDenied)
    assert (left, restored) == (SUSPENDED, ENABLED)
    reliability(
        "security",
        f"training identity tries to change bucket versioning ({any_s3_server.kind})",
        done="as training: PUT versioning Suspended, then Enabled; ensure_bucket on the "
        "versioned bucket; ensure_bucket on a bucket whose versioning the admin suspended",
        expected="AccessDenied for both PUTs, versioning still Enabled; ensure_bucket passes "
        "on the versioned bucket and stops with the operator's `python -m infra.minio_setup` command "
        "on the other, which stays Suspended until the admin keys enable it",
        observed=f"{', '.join(codes)}; versioning {status}; other bucket: "
        f"{type(refused.value).__name__}: {refused.value}; left {left}, {restored} after "
        "ensure_bucket with the root keys",
    )


def test_training_writes_and_serving_loads_and_logs(
    published: Published, contract: DataContract, reliability
) -> None:
    training, serving = published.training, published.serving
    second = training.register(published.model, published.spec)
    move = training.set_alias("champion", second.version, "the training identity promotes v2")
    manifest, model = serving.load(serving.alias("champion"))  # sha256 checked before unpickling
    folder = f"{serving.prefix}v{second.version}/"  # KServe's storage initializer: list, GET all
    downloaded = {key.removeprefix(folder): serving.store.get_bytes(key)
                  for key in serving.store.list_keys(folder)}  # fmt: skip
    rows = generate_house_prices(5, seed=3)[contract.feature_names]
    predictions = [float(p) for p in model.predict(rows)]
    since = datetime.now(UTC) - timedelta(seconds=1)
    writer = ServingLogWriter(serving.store, serving.name, contract.feature_names, 60.0).start()
    writer.log("req-identities", manifest.version, rows.values.tolist(), predictions)
    flushed = writer.flush()
    writer.close()
    logged = read_serving_logs(training.store, serving.name, since, datetime.now(UTC))

    assert (move.from_version, move.to_version) == (1, 2) and manifest == second
    assert set(downloaded) == {"model.joblib", "manifest.json", "manifest.sig"}
    assert flushed and writer.last_error is None and writer.files_written == 1
    assert logged["prediction"].tolist() == predictions
    reliability(
        "security",
        f"training writes, serving loads and logs ({published.kind})",
        done="training identity registers v2 and moves champion 1->2; serving identity loads "
        "the champion, lists and downloads v2's folder as KServe's storage initializer does, "
        "and flushes a serving-log file; training reads the log back",
        expected="all allowed: the registry, the model load and the request logs keep working",
        observed=f"champion v{move.from_version}->v{move.to_version}; serving loaded "
        f"v{manifest.version} (sha256 {manifest.sha256[:12]} verified), downloaded "
        f"{sorted(downloaded)}; "
        f"{writer.files_written} log file, {len(logged)} rows read back by training",
    )


@pytest.fixture
def model_server_as_serving(published: Published, identities: S3Identities) -> Iterator:
    options = ServeOptions(routing=Routing(stable_version=1), log_flush_seconds=60)
    env = {**identities.serving.env(), "MLOPS_MANIFEST_KEY": KEY_HEX}
    server = start_model_server(env, published.serving.name, options=options)
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
