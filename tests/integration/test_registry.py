"""The registry against real S3 servers (SeaweedFS and MinIO): versions, aliases, history, integrity."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sklearn.linear_model import LinearRegression

from infra.processes import free_port
from tasks.registry.versions import (
    IntegrityError,
    ModelRegistry,
    ModelSpec,
    RegistryError,
    VersionNotFound,
)
from tasks.s3 import S3Unavailable, connect
from tests.support.keys import TEST_KEY
from tests.support.specs import spec_for
from tests.support.stack import settings_for

pytestmark = pytest.mark.integration

SPEC = spec_for()


@pytest.fixture
def registry(any_s3_server, model_name: str) -> ModelRegistry:
    store = connect(settings_for(any_s3_server))
    store.ensure_bucket()
    return ModelRegistry(store, model_name, TEST_KEY)


def small_model(slope: float) -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, slope, 2 * slope])


def test_register_alias_load_history(registry: ModelRegistry) -> None:
    first = registry.register(small_model(1.0), SPEC)
    second = registry.register(small_model(2.0), SPEC.model_copy(update={"parent": 1}))
    assert (first.version, second.version) == (1, 2)
    assert second.storage_uri == f"s3://{registry.store.bucket}/models/{registry.name}/v2/"
    assert registry.alias("champion") is None
    registry.set_alias("champion", 1, "first model")
    registry.set_alias("champion", 2, "better on the holdout")
    registry.set_alias("previous", 1, "kept ready")
    manifest, model = registry.load(registry.alias("champion"))
    assert manifest.parent == 1 and model.predict([[3.0]])[0] == pytest.approx(6.0)
    assert registry.aliases() == {"champion": 2, "previous": 1}
    moves = [(m.alias, m.from_version, m.to_version, m.reason) for m in registry.history()]
    assert moves == [
        ("champion", None, 1, "first model"),
        ("champion", 1, 2, "better on the holdout"),
        ("previous", None, 1, "kept ready"),
    ]
    assert [m.version for m in registry.versions()] == [1, 2]


def test_version_at_answers_which_version_served_when(registry: ModelRegistry) -> None:
    registry.register(small_model(1.0), SPEC)
    registry.register(small_model(2.0), SPEC)
    before = datetime.now(UTC)
    time.sleep(0.01)
    registry.set_alias("champion", 1, "first")
    between = datetime.now(UTC)
    time.sleep(0.01)
    registry.set_alias("champion", 2, "second")
    assert registry.version_at("champion", before) is None
    assert registry.version_at("champion", between) == 1
    assert registry.version_at("champion", datetime.now(UTC)) == 2


def test_tampered_model_is_never_loaded(registry: ModelRegistry) -> None:
    manifest = registry.register(small_model(1.0), SPEC)
    registry.store.put_bytes(f"models/{registry.name}/v1/model.joblib", b"not the model")
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        registry.load(manifest.version)
    with pytest.raises(IntegrityError):
        registry.set_alias("champion", manifest.version, "must be refused")
    assert registry.alias("champion") is None


def test_alias_to_missing_or_incomplete_version_is_refused(registry: ModelRegistry) -> None:
    with pytest.raises(VersionNotFound, match="v9 does not exist"):
        registry.set_alias("champion", 9, "no such version")
    # A registration that died after uploading the model but before the manifest:
    registry.store.put_bytes(f"models/{registry.name}/claims/v1/dead", b"x")
    registry.store.put_bytes(f"models/{registry.name}/v1/model.joblib", b"half")
    with pytest.raises(VersionNotFound):
        registry.set_alias("champion", 1, "half-registered")
    assert registry.versions() == []
    assert registry.register(small_model(1.0), SPEC).version == 2  # the dead number is skipped
    assert registry.aliases() == {}


def test_racing_registrations_get_distinct_versions(registry: ModelRegistry) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        manifests = list(
            pool.map(lambda i: registry.register(small_model(float(i)), SPEC), range(8))
        )
    numbers = [m.version for m in manifests]
    assert len(set(numbers)) == 8  # never the same number twice
    assert max(numbers) <= 10  # contenders retry their number: at most a rare gap
    for manifest in manifests:
        loaded, _ = registry.load(manifest.version)
        assert loaded.sha256 == manifest.sha256  # nobody's model was overwritten


def test_bad_alias_names_are_refused(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="not valid"):
        registry.set_alias("../champion", None, "path trick")


def test_bucket_versioning_keeps_every_alias_move(registry: ModelRegistry) -> None:
    registry.register(small_model(1.0), SPEC)
    registry.register(small_model(2.0), SPEC)
    registry.set_alias("champion", 1, "a")
    registry.set_alias("champion", 2, "b")
    again = registry.set_alias("champion", 2, "a re-run: already there")
    key = f"models/{registry.name}/aliases/champion.json"
    versions = list(registry.store.client.list_objects(registry.store.bucket, prefix=key,
                                                       include_version=True))  # fmt: skip
    assert len(versions) == 2  # both moves kept by S3; the no-op re-run wrote nothing
    assert (again.from_version, again.to_version, again.reason) == (1, 2, "b")
    assert len(registry.history()) == 2


def test_unreachable_server_fails_fast_with_a_clear_error(model_name: str) -> None:
    from tasks.settings import get_settings

    settings = get_settings(s3_endpoint=f"http://127.0.0.1:{free_port()}", s3_access_key="a",
                            s3_secret_key="b", s3_retries=2, s3_timeout_s=1)  # fmt: skip
    started = time.monotonic()
    with pytest.raises(S3Unavailable, match="unreachable"):
        ModelRegistry(connect(settings), model_name, TEST_KEY).register(small_model(1.0), SPEC)
    assert time.monotonic() - started < 15


def test_non_finite_metrics_are_refused_before_anything_is_written(registry: ModelRegistry) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"metrics must be finite numbers; not: \['r2'\]"):
        spec = ModelSpec(**{**SPEC.model_dump(), "metrics": {"r2": float("nan")}})
        registry.register(small_model(1.0), spec)
    assert registry.versions() == [] and not list(registry.store.list_keys(registry.prefix))


def test_a_missing_bucket_is_named(any_s3_server, model_name: str) -> None:
    from tasks.s3 import BucketNotFound

    store = connect(settings_for(any_s3_server, bucket="no-such-bucket-here"))
    with pytest.raises(BucketNotFound, match="'no-such-bucket-here' does not exist"):
        ModelRegistry(store, model_name, TEST_KEY).aliases()
    with pytest.raises(BucketNotFound, match="create it first"):
        store.get_bytes("models/x/v1/manifest.json")
