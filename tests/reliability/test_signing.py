"""Signed manifests against the real S3 servers and the real model server.

A writer with S3 write access but without the HMAC key (the "forger" here: a registry opened
without the key, or with another key) can upload a model and a manifest whose sha256 matches.
The registry and the model server that hold the key must refuse that version everywhere.
"""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest
from sklearn.linear_model import LinearRegression

from infra.model_server import start_model_server
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import Routing, ServeOptions
from tasks.registry.signing import SigningKeyMissing, signing_key
from tasks.registry.versions import IntegrityError, ModelRegistry, open_registry
from tasks.s3 import connect
from tasks.settings import get_settings
from tasks.training.model import train_model
from tests.support.specs import spec_for
from tests.support.stack import settings_for

pytestmark = pytest.mark.integration

SPEC = spec_for()
KEY = secrets.token_hex(32).encode()


def _model(slope: float) -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, slope, 2 * slope])


def _state(registry: ModelRegistry) -> tuple:
    return (
        [(m.version, m.sha256) for m in registry.versions()],
        registry.aliases(),
        len(registry.history()),
    )


@pytest.fixture
def keyed(any_s3_server, model_name: str) -> ModelRegistry:
    store = connect(settings_for(any_s3_server))
    store.ensure_bucket()
    registry = ModelRegistry(store, model_name, signing_key=KEY)
    registry.register(_model(1.0), SPEC)
    registry.set_alias("champion", 1, "signed first version")
    return registry


@pytest.mark.parametrize(
    ("forger_key", "expected"),
    [(None, "not signed"), (secrets.token_hex(32).encode(), "signed with key")],
    ids=["no key", "another key"],
)
def test_a_version_written_without_our_key_is_refused(
    keyed, forger_key, expected, any_s3_server, reliability
):
    forger = ModelRegistry(
        keyed.store, keyed.name, signing_key=forger_key, allow_unsigned=forger_key is None
    )
    forged = forger.register(_model(100.0), SPEC)
    before = _state(keyed)
    with pytest.raises(IntegrityError, match=expected) as refused:
        keyed.set_alias("champion", forged.version, "forged")
    with pytest.raises(IntegrityError, match=expected):
        keyed.load(forged.version)
    assert _state(keyed) == before and keyed.alias("champion") == 1
    assert [m.version for m in keyed.versions()] == [1]  # the forged v2 is not listed
    reliability(
        "security",
        f"forged version ({'no key' if forger_key is None else 'another key'}, "
        f"{any_s3_server.kind})",
        done=f"a writer {'without the key' if forger_key is None else 'with another key'} "
        f"registered v{forged.version} with a matching sha256 on {keyed.store.endpoint}",
        expected="IntegrityError naming the signature; alias not moved; version not listed",
        observed=f"{type(refused.value).__name__}: {str(refused.value)[:90]}; champion "
        f"v{keyed.alias('champion')}; listed {[m.version for m in keyed.versions()]}",
    )


def test_a_tampered_signed_manifest_is_refused(keyed, reliability):
    key = f"models/{keyed.name}/v1/manifest.json"
    document = json.loads(keyed.store.get_bytes(key))
    document["metrics"]["r2"] = 0.999  # flatter the model; the sha256 still matches
    keyed.store.put_bytes(key, json.dumps(document, indent=2).encode(), "application/json")
    with pytest.raises(IntegrityError, match="does not match its signature") as refused:
        keyed.load(1)
    with pytest.raises(IntegrityError):
        keyed.set_alias("previous", 1, "point at the tampered version")
    assert keyed.alias("previous") is None
    reliability(
        "bad input: tampering",
        "signed manifest edited (metrics)",
        done="rewrote v1's manifest.json with r2 0.999; model file and sha256 unchanged",
        expected="loading and aliasing refused: the manifest no longer matches its HMAC",
        observed=f"{type(refused.value).__name__}: {str(refused.value)[:80]}; "
        f"previous alias {keyed.alias('previous')}",
    )


def test_the_model_server_with_the_key_never_serves_a_forged_version(
    s3_server, model_name: str, contract, reliability
) -> None:
    settings = settings_for(s3_server)
    store = connect(settings)
    store.ensure_bucket()
    keyed = ModelRegistry(store, model_name, signing_key=KEY)
    frame = generate_house_prices(400, seed=3)
    spec = SPEC.model_copy(update={"features": contract.feature_names, "target": "price"})
    keyed.register(train_model(frame, contract, seed=1).model, spec)
    forger = ModelRegistry(store, model_name, allow_unsigned=True)
    forged = forger.register(train_model(frame, contract, seed=2).model, spec)
    row = frame[contract.feature_names].iloc[:1].to_dict("records")
    env = {**s3_server.env(), "MLOPS_MANIFEST_KEY": KEY.decode()}
    options = ServeOptions(routing=Routing(stable_version=1), log_requests=False)
    server = start_model_server(env, model_name, options=options)
    try:
        started = time.perf_counter()
        refused = httpx.put(
            f"{server.url}/mlops/v1/routing",
            json={"stable_version": 1, "canary_version": forged.version, "canary_percent": 50},
            timeout=60,
        )
        elapsed = time.perf_counter() - started
        answers = {
            httpx.post(
                f"{server.url}/v1/models/{model_name}:predict", json={"instances": row}
            ).headers["x-model-version"]
            for _ in range(20)
        }
        routing = httpx.get(f"{server.url}/mlops/v1/routing").json()["routing"]
    finally:
        server.stop()
    assert 400 <= refused.status_code < 500, refused.text
    assert "signature" in refused.text or "not signed" in refused.text
    assert answers == {"1"} and routing["canary_version"] is None
    reliability(
        "security",
        "model server asked to serve a forged version",
        done=f"PUT routing with canary v{forged.version} (unsigned, sha256 matching) "
        "to a model server holding the key",
        expected="4xx naming the signature, no traffic to the forged version",
        observed=f"HTTP {refused.status_code} in {elapsed * 1000:.0f} ms; 20 requests all "
        f"answered by v{answers.pop()}; canary {routing['canary_version']}",
    )


def test_a_short_or_missing_key_is_named(monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_MANIFEST_KEY")
    with pytest.raises(SigningKeyMissing, match="MLOPS_MANIFEST_KEY has 5 bytes"):
        signing_key(get_settings(manifest_key="short"))
    assert signing_key(get_settings()) is None
    assert signing_key(get_settings(manifest_key="k" * 32)) == b"k" * 32


def test_without_a_key_nothing_is_registered_or_loaded(
    s3_server, model_name: str, monkeypatch, reliability
) -> None:
    """Signatures are on by default: no key means refuse, and nothing half-written is left."""
    settings = settings_for(s3_server)
    store = connect(settings)
    store.ensure_bucket()
    ModelRegistry(store, model_name, signing_key=KEY).register(_model(1.0), SPEC)
    monkeypatch.delenv("MLOPS_MANIFEST_KEY")
    bare = open_registry(settings_for(s3_server, model_name=model_name))
    before = sorted(store.list_keys(f"models/{model_name}/", recursive=True))
    with pytest.raises(SigningKeyMissing, match="MLOPS_ALLOW_UNSIGNED") as refused:
        bare.register(_model(2.0), SPEC)
    with pytest.raises(SigningKeyMissing, match="MLOPS_MANIFEST_KEY"):
        bare.load(1)
    with pytest.raises(SigningKeyMissing):
        bare.set_alias("champion", 1, "no key")
    assert sorted(store.list_keys(f"models/{model_name}/", recursive=True)) == before
    reliability(
        "security",
        "registry without a signing key",
        done="register, load and set_alias on a registry opened with no MLOPS_MANIFEST_KEY",
        expected="SigningKeyMissing naming the settings; nothing written",
        observed=f"{type(refused.value).__name__}: {str(refused.value)[:90]}; "
        f"objects before/after {len(before)}",
    )


def test_allow_unsigned_is_explicit_and_warns_on_every_load(
    s3_server, model_name: str, monkeypatch, caplog
) -> None:
    monkeypatch.delenv("MLOPS_MANIFEST_KEY")
    monkeypatch.setenv("MLOPS_ALLOW_UNSIGNED", "true")
    registry = open_registry(settings_for(s3_server, model_name=model_name), create_bucket=True)
    manifest = registry.register(_model(1.0), SPEC)
    assert not registry.store.exists(f"models/{model_name}/v{manifest.version}/manifest.sig")
    with caplog.at_level("WARNING", logger="tasks.registry.versions"):
        registry.load(manifest.version)
        registry.load(manifest.version)
    unsigned = [r for r in caplog.records if "WITHOUT signature verification" in r.getMessage()]
    assert len(unsigned) == 2


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda raw: raw[:-40], "manifest is not valid"),
        (lambda raw: raw.replace(b'"version": 1', b'"version": 7'), "describes"),
        (
            lambda raw: raw.replace(b'"sha256": "', b'"sha256": "00'),
            "does not match the manifest's",
        ),
    ],
    ids=["invalid JSON", "another version", "another sha256"],
)
def test_without_signatures_the_manifest_checks_behind_them_still_refuse(
    edit, names, s3_server, model_name: str
) -> None:
    """Signed, any edit fails the signature first (test_tampering); with MLOPS_ALLOW_UNSIGNED
    the manifest's own checks are what is left, and they refuse too."""
    store = connect(settings_for(s3_server))
    store.ensure_bucket()
    unsigned = ModelRegistry(store, model_name, allow_unsigned=True)
    unsigned.register(_model(1.0), SPEC)
    key = f"models/{model_name}/v1/manifest.json"
    store.put_bytes(key, edit(store.get_bytes(key)))
    with pytest.raises(IntegrityError, match=names):
        unsigned.load(1)
