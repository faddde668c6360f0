"""Tampering in S3: a registered version's model file or manifest changed behind the registry.

Each case registers a fresh, verifiable version (the champion's own model under a new number),
damages one of its objects directly in the bucket, and then tries every way into service: load
it, deploy it with the real deploy flow, point an alias at it, and ask the model server itself
to take it as a canary. All must refuse with the named error before any traffic reaches it, and
the served champion, aliases, history and registry must be as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from flows.deploy import deploy
from flows.retrain import retrain
from tasks.modelserver.client import ServingTargetError
from tasks.registry.versions import IntegrityError, Manifest, ModelSpec
from tests.support.corpus import TAMPERINGS, Tampering

if TYPE_CHECKING:
    from tests.support.bad_world import World

pytestmark = pytest.mark.integration
AREA = "bad input: tampering"


@pytest.fixture
def world(bad_input_world: World) -> Iterator[World]:
    with bad_input_world.environment():
        yield bad_input_world


def register_copy(world: World) -> Manifest:
    """A new version holding the champion's own (verified) model: sound until we damage it."""
    manifest, model = world.registry.load(world.champion.version)
    spec = ModelSpec(**manifest.model_dump(include=set(ModelSpec.model_fields)))
    return world.registry.register(model, spec.model_copy(update={"reason": "to tamper with"}))


def damage(world: World, version: int, case: Tampering) -> None:
    key = f"{world.registry.prefix}v{version}/{case.file}"
    damaged = case.damage(world.registry.store.get_bytes(key))
    if damaged is None:
        world.registry.store.delete(key)
    else:
        world.registry.store.put_bytes(key, damaged)


def refusals(world: World, manifest: Manifest, case: Tampering) -> dict[str, str]:
    """Every way into service, each refused: what each said."""
    said = {}
    with pytest.raises(case.error) as raised:
        world.registry.load(manifest.version)
    said["load"] = str(raised.value)
    with pytest.raises(case.error) as raised:
        deploy(version=manifest.version, percent=20, reason="tampered")
    said["deploy flow"] = str(raised.value)
    with pytest.raises(case.error) as raised:
        world.registry.set_alias("canary", manifest.version, "tampered")
    said["set_alias"] = str(raised.value)
    with pytest.raises(ServingTargetError) as raised:  # the server checks for itself
        world.target.start_canary(manifest, 20)
    said["model server"] = str(raised.value)
    return said


def around(message: str, case: Tampering, width: int = 60) -> str:
    """The part of an error message that names the problem, on one line."""
    text = " ".join(message.split())
    start = max(text.find(case.names) - width, 0)
    return repr(("…" if start else "") + text[start : start + len(case.names) + 2 * width] + "…")


@pytest.mark.parametrize("case", TAMPERINGS, ids=lambda case: case.id)
def test_tampered_version_never_reaches_traffic(case: Tampering, world: World, reliability) -> None:
    manifest = register_copy(world)
    damage(world, manifest.version, case)
    before = world.snapshot()
    said = refusals(world, manifest, case)
    for where, message in said.items():
        assert case.names in message, f"{where}: {message}"
    after = world.snapshot()
    assert after == before
    listed = manifest.version in [version for version, _ in after.versions]
    answer = world.predict(world.good.head(1))
    assert answer.status_code == 200
    assert answer.headers["x-model-version"] == str(world.champion.version)
    reliability(
        AREA,
        case.id,
        done=f"registered v{manifest.version} (a sound copy of the champion), then damaged its "
        f"{case.file} directly in S3 ({case.id}); tried load, the deploy flow, "
        "set_alias('canary') and the model server's own canary load",
        expected=f"all four refuse ({case.error.__name__}: {case.names!r}); no traffic to it; "
        "champion, aliases, history, registry unchanged",
        observed=f"{len(said)} refusals naming it; deploy flow: "
        f"{around(said['deploy flow'], case)}; model server: "
        f"{around(said['model server'], case)}. Before = after: {after.describe()}; "
        f"a request after it answered by v{answer.headers['x-model-version']}; "
        f"v{manifest.version} {'still' if listed else 'no longer'} listed by versions()",
    )


def test_tampered_champion_keeps_serving_its_verified_copy(world: World, reliability) -> None:
    """The file behind the serving champion is overwritten: the server keeps the copy it
    verified at load; nothing new may be judged against (or rolled onto) the unverifiable file."""
    key = f"{world.registry.prefix}v{world.champion.version}/model.joblib"
    original = world.registry.store.get_bytes(key)
    price = world.predict(world.good.head(1)).json()["predictions"][0]
    data = world.upload("good-3.csv", world.good.to_csv(index=False).encode())
    world.registry.store.put_bytes(key, b"\x80\x04 not the champion any more")
    try:
        before = world.snapshot()
        with pytest.raises(IntegrityError, match="does not match the manifest's") as loading:
            world.registry.load(world.champion.version)
        with pytest.raises(IntegrityError, match="does not match the manifest's"):
            retrain(data=data, reason="retrain over a tampered champion")
        answer = world.predict(world.good.head(1))
        after = world.snapshot()
    finally:
        world.registry.store.put_bytes(key, original)
    assert answer.status_code == 200 and answer.json()["predictions"][0] == price
    assert answer.headers["x-model-version"] == str(world.champion.version)
    assert after == before
    assert world.registry.load(world.champion.version)[0].sha256 == world.champion.sha256
    reliability(
        AREA,
        "the serving champion's model file overwritten",
        done=f"overwrote v{world.champion.version}/model.joblib (the serving champion) in S3; "
        "loaded it, ran the retrain flow on good data, sent a request; then restored the file",
        expected="load and retrain refuse (IntegrityError); the server keeps answering from the "
        "copy it verified at load, same price; nothing registered or moved",
        observed=f"load: {str(loading.value)[:80]!r}; retrain: IntegrityError; request: 200 from "
        f"v{answer.headers['x-model-version']}, price {answer.json()['predictions'][0]:.0f} "
        f"(before: {price:.0f}). Before = after: {after.describe()}",
    )
