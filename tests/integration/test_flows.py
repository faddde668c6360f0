"""The ci-checks and retrain flows on a real Prefect server and a real S3 server.

Bad input stops the flow with an error naming the problem; nothing is registered and the
champion is untouched. A good batch is registered, published as artifacts and announced.
"""

import time
from pathlib import Path

import pandas as pd
import pytest
from prefect import get_client

from flows.ci_checks import ci_checks
from flows.retrain import retrain
from tasks.data.loading import DataLoadError
from tasks.data.synthetic import DriftSpec, generate_house_prices
from tasks.data.validation import DataValidationError
from tasks.registry.datasets import read_snapshot
from tasks.registry.versions import ModelRegistry
from tasks.s3 import S3Unavailable, connect
from tasks.settings import Settings
from tasks.training.stages import GateFailed
from tests.support.keys import TEST_KEY
from tests.support.stack import events_named

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def good_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "houses.csv"
    generate_house_prices(1500, seed=21).to_csv(path, index=False)
    return path


def registry_of(settings: Settings) -> ModelRegistry:
    store = connect(settings)
    store.ensure_bucket()
    return ModelRegistry(store, settings.model_name, TEST_KEY)


def test_retrain_registers_announces_and_publishes(flow_env: Settings, good_csv: Path) -> None:
    manifest = retrain(data=str(good_csv), reason="first model")
    registry = registry_of(flow_env)
    assert [m.version for m in registry.versions()] == [manifest.version] == [1]
    assert manifest.metrics["r2"] > 0.85 and manifest.parent is None
    assert manifest.data.rows == 1500
    # The set is snapshotted once, named by its content: nothing outside the registry is needed.
    snapshot = read_snapshot(registry.store, manifest.data.source, manifest.data.digest)
    assert manifest.data.source.endswith(
        f"/datasets/{flow_env.model_name}/{manifest.data.digest}.parquet"
    )
    assert len(snapshot) == 1500
    pd.testing.assert_frame_equal(
        snapshot, pd.read_csv(good_csv), check_dtype=False, check_exact=False
    )
    assert manifest.library_versions["scikit-learn"]
    (event,) = events_named("mlops.model.registered", flow_env.model_name)
    assert event.payload["version"] == 1 and event.payload["reason"] == "first model"
    with get_client(sync_client=True) as client:
        keys = {artifact.key for artifact in client.read_artifacts()}
    assert {"quality-gate", "data-validation"} <= keys


def test_second_version_is_judged_against_the_champion(
    flow_env: Settings, good_csv: Path, tmp_path: Path
) -> None:
    first = retrain(data=str(good_csv), reason="first")
    registry = registry_of(flow_env)
    registry.set_alias("champion", first.version, "test")
    drifted = tmp_path / "drifted.csv"
    generate_house_prices(1500, seed=22, drift=DriftSpec(price_level=1.1)).to_csv(
        drifted, index=False
    )
    second = retrain(data=str(drifted), reason="drift")
    assert (second.version, second.parent) == (2, 1)


def test_a_worse_candidate_is_refused_and_nothing_registered(
    flow_env: Settings, tmp_path: Path
) -> None:
    """Noise-only prices: no model beats the training median by the 10% margin, so the gate
    refuses, naming both MAEs, and the registry stays empty."""
    frame = generate_house_prices(1500, seed=23)
    frame["price"] = frame["price"].sample(frac=1.0, random_state=1).to_numpy()
    path = tmp_path / "shuffled.csv"
    frame.to_csv(path, index=False)
    baseline = r"mae [\d.e+]+ vs baseline \(training median\) mae [\d.e+]+: improvement -?[\d.]+%"
    with pytest.raises(GateFailed, match=baseline + " < the 10% required"):
        retrain(data=str(path), reason="shuffled labels")
    assert registry_of(flow_env).versions() == []


def _write(tmp_path: Path, frame: pd.DataFrame | bytes) -> str:
    path = tmp_path / "batch.csv"
    if isinstance(frame, bytes):
        path.write_bytes(frame)
    else:
        frame.to_csv(path, index=False)
    return str(path)


BAD_BATCHES = {
    "empty": (lambda f: b"", DataLoadError, "the file is empty"),
    "not a csv": (lambda f: b"\x00\x01\x02binary", DataLoadError, "binary content"),
    "missing target": (lambda f: f.drop(columns=["price"]), DataValidationError, "column 'price': missing column"),
    "NaNs": (lambda f: f.assign(bathrooms=None), DataValidationError, "column 'bathrooms': null values"),
    "negative sizes": (lambda f: f.assign(size_sqft=-f.size_sqft), DataValidationError, "column 'size_sqft': outside the range"),
    "renamed column": (lambda f: f.rename(columns={"bedrooms": "beds"}), DataValidationError, "column 'beds': column not in contract"),
    "prices outside contract": (lambda f: f.assign(price=f.price * 100), DataValidationError, "column 'price': outside the range"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_bad_batches_stop_retrain_and_leave_the_champion(
    flow_env: Settings, good_csv: Path, tmp_path: Path, case: str
) -> None:
    first = retrain(data=str(good_csv), reason="champion")
    registry = registry_of(flow_env)
    registry.set_alias("champion", first.version, "test")
    make, error, message = BAD_BATCHES[case]
    with pytest.raises(error) as raised:
        retrain(data=_write(tmp_path, make(pd.read_csv(good_csv))), reason=case)
    assert message in str(raised.value)
    assert [m.version for m in registry.versions()] == [first.version]
    assert registry.aliases() == {"champion": first.version}


def test_ci_checks_pass_on_good_data_and_fail_with_reasons(
    flow_env: Settings, good_csv: Path, tmp_path: Path
) -> None:
    verdict = ci_checks(data=str(good_csv))
    assert verdict.passed
    bad = pd.read_csv(good_csv).assign(size_sqft=-1.0, bedrooms=None)
    with pytest.raises(DataValidationError) as raised:
        ci_checks(data=_write(tmp_path, bad))
    assert "size_sqft" in str(raised.value) and "bedrooms" in str(raised.value)


def test_unreachable_registry_fails_clearly_and_leaves_nothing(
    flow_env: Settings, good_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("MLOPS_S3_RETRIES", "1")
    monkeypatch.setenv("MLOPS_S3_TIMEOUT_S", "1")
    started = time.monotonic()
    with pytest.raises(S3Unavailable, match="unreachable"):
        retrain(data=str(good_csv), reason="no s3")
    assert time.monotonic() - started < 30
    monkeypatch.undo()
    assert registry_of(flow_env).versions() == []
