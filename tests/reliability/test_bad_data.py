"""Bad training batches: each is uploaded to S3 and fed to the real retrain flow.

One world for all of them (SeaweedFS, the shared Prefect server, a champion served by a real
model server: tests/support/bad_world.py). Every batch must stop the flow with its named
error and leave everything as it was: registry objects, versions and checksums, aliases, alias
history, served routing, events.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from flows.retrain import retrain
from tasks.data.synthetic import generate_house_prices
from tasks.data.validation import DataValidationError
from tests.support.corpus import DATA_BATCHES, MILLION, BadBatch, identical_rows_csv

if TYPE_CHECKING:
    from tests.support.bad_world import World

pytestmark = pytest.mark.integration


@pytest.fixture
def world(bad_input_world: World) -> Iterator[World]:
    with bad_input_world.environment():
        yield bad_input_world


@pytest.fixture(scope="module")
def small_good() -> pd.DataFrame:
    """A good batch (passes the contract) that each case damages in one way."""
    return generate_house_prices(300, seed=7)


def first_line(error: BaseException, limit: int = 160) -> str:
    lines = [line.strip("- ") for line in str(error).splitlines() if line.strip()]
    text = " / ".join(lines[:3])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def refused(uri: str, error: type[Exception], names: str) -> tuple[BaseException, float]:
    """Run the real retrain flow on `uri`; it must fail with `error` saying `names`."""
    started = time.perf_counter()
    with pytest.raises(error) as raised:
        retrain(data=uri, reason="bad batch")
    assert names in str(raised.value), str(raised.value)
    return raised.value, time.perf_counter() - started


@pytest.mark.parametrize("case", DATA_BATCHES, ids=lambda case: case.id)
def test_bad_batch_is_refused_and_nothing_moves(
    case: BadBatch, world: World, small_good: pd.DataFrame, reliability
) -> None:
    uri = world.upload(f"bad/{case.id}.csv", case.make(small_good))
    before = world.snapshot()
    error, seconds = refused(uri, case.error, case.names)
    after = world.snapshot()
    assert after == before
    assert after.routing[0] == world.champion.version
    reliability(
        "bad input: data",
        f"batch: {case.id}",
        done=f"{case.what}; uploaded to S3, real retrain flow run on it",
        expected=f"{case.error.__name__} naming {case.names!r}; registry, aliases, history, "
        "routing and events unchanged",
        observed=f"{type(error).__name__} after {seconds:.1f}s: {first_line(error)}. "
        f"Before = after: {after.describe()}",
    )


def test_a_million_identical_rows_are_refused(
    world: World, small_good: pd.DataFrame, tmp_path: Path, reliability
) -> None:
    path = tmp_path / "same.csv"
    identical_rows_csv(small_good, str(path), MILLION)
    size_mb = path.stat().st_size / 1e6
    uri = world.upload("bad/a-million-identical-rows.csv", path.read_bytes())
    before = world.snapshot()
    error, seconds = refused(uri, DataValidationError, "duplicated rows: 100.0% > 1.0%")
    assert error.report.rows == MILLION
    (violation,) = error.report.violations
    assert violation.count == MILLION - 1
    after = world.snapshot()
    assert after == before
    reliability(
        "bad input: data",
        "batch: a million identical rows",
        done=f"{MILLION:,} copies of one good row ({size_mb:.0f} MB CSV) uploaded to S3; "
        "real retrain flow run on it",
        expected="DataValidationError from the duplicate-rows rule; nothing changed",
        observed=f"{type(error).__name__} after {seconds:.1f}s: {first_line(error)}; "
        f"{violation.count:,} duplicates counted. Before = after: {after.describe()}",
    )


def test_after_the_corpus_a_good_batch_still_registers_once(world: World, reliability) -> None:
    """The control: the world still works, and only flow runs that registered announced it.

    Only two retrain runs ever succeed on this model (the champion's and this one; the tampering
    cases register through the registry, which announces nothing), so exactly two registered
    events may exist. Waiting for this run's event also gives any stray one time to arrive.
    """
    before = world.snapshot()
    good = generate_house_prices(1500, seed=32).to_csv(index=False).encode()
    manifest = retrain(data=world.upload("good-2.csv", good), reason="control after the corpus")
    assert manifest.version > max(version for version, _ in before.versions)
    deadline = time.monotonic() + 30
    while manifest.version not in world.registered_versions():
        assert time.monotonic() < deadline, "the good run's registered event never arrived"
        time.sleep(0.5)
    time.sleep(1)  # room for a stray event, had a bad batch emitted one
    announced = world.registered_versions()
    assert announced == [world.champion.version, manifest.version]
    after = world.snapshot()
    assert after.versions == (*before.versions, (manifest.version, manifest.sha256))
    assert after.routing == before.routing  # registering does not serve
    reliability(
        "bad input: data",
        "control: a good batch after the corpus",
        done=f"after {len(DATA_BATCHES) + 1} refused batches, a good 1500-row batch retrained",
        expected="registered as a new version; the model's registered events are exactly the "
        "champion's and this one",
        observed=f"v{manifest.version} registered (parent v{manifest.parent}); registered "
        f"events carry versions {announced}; serving still v{after.routing[0]}",
    )
