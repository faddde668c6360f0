"""Breast cancer (binary) and wine (three classes) through the whole loop on the real stack.

Each: `mlops init --register` → `mlops check` → `mlops train` (v1, the champion) → served by the
real model server process over HTTP to users whose labels arrive later → `mlops drift` on those
serving logs → `mlops train` again (v2, a canary judged on the labelled traffic, promoted) →
a version that guesses (trained on shuffled labels, registered past the gate) deployed as a
canary and rolled back on its log loss. Breast cancer's labels are text; wine's are the
integers 0/1/2 as scikit-learn ships them, so its reference (read from CSV as numbers) and its
logged labels (stored as the contract's text) meet in the drift check and the canary window.

Real SeaweedFS, a real Prefect server, the real KServe model server; no stand-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from flows.canary_analysis import canary_analysis
from flows.cli import main as cli_main
from flows.deploy import deploy
from infra.model_server import start_model_server
from infra.traffic import Traffic
from tasks.data.loading import data_digest
from tasks.decisions.routing import ServeOptions
from tasks.modelserver.client import LocalServingTarget, ServingTargetError
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.configs import read_config
from tasks.registry.versions import ModelRegistry, open_registry
from tasks.settings import Settings, get_settings
from tasks.training.candidate import task_params
from tasks.training.model import train_model
from tests.support.specs import spec_for

pytestmark = pytest.mark.integration


def cancer() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.copy()
    frame["target"] = frame["target"].map(dict(enumerate(data.target_names)))
    return frame


def wine() -> pd.DataFrame:
    return load_wine(as_frame=True).frame  # target 0, 1, 2 as integers


DATA_SETS: dict[str, tuple[Callable[[], pd.DataFrame], list[str]]] = {
    "breast-cancer": (cancer, ["benign", "malignant"]),
    "wine": (wine, ["0", "1", "2"]),
}


def wait_for_logged(registry: ModelRegistry, rows: int, timeout: float = 60) -> pd.DataFrame:
    """The serving logs once at least `rows` answered rows with labels are on S3."""
    deadline = time.monotonic() + timeout
    while True:
        now = pd.Timestamp.now(tz="UTC")
        logs = read_serving_logs(registry.store, registry.name, now - pd.Timedelta(hours=1), now)
        labelled = logs[(logs["status"] == "ok") & logs["label"].notna()] if len(logs) else logs
        if len(labelled) >= rows or time.monotonic() > deadline:
            return labelled
        time.sleep(0.5)


def register_a_guesser(registry: ModelRegistry, frame: pd.DataFrame, classes: list[str]) -> int:
    """A real classifier trained on shuffled labels: it passes every load check (task, classes,
    probabilities) and knows nothing. The gate would refuse it; a canary must catch it too."""
    contract = read_config(registry).contract
    shuffled = frame.assign(target=np.random.default_rng(0).permutation(frame["target"].values))
    trained = train_model(shuffled, contract, seed=0)
    params = {**trained.params, **task_params(trained, contract)}  # as retrain records them
    assert params["classes"] == classes
    spec = spec_for(contract, digest=data_digest(shuffled), rows=len(shuffled), params=params)
    return registry.register(trained.model, spec).version


@pytest.mark.parametrize("data_set", sorted(DATA_SETS))
def test_a_classifier_is_served_canaried_rolled_back_and_drift_checked_on_the_stack(
    data_set: str, flow_env: Settings, s3_server, tmp_path: Path, monkeypatch, capsys
) -> None:
    load, classes = DATA_SETS[data_set]
    frame = load()
    monkeypatch.chdir(tmp_path)
    frame.to_csv("data.csv", index=False)
    name = f"{data_set}-{flow_env.model_name}"[:63]  # the session's S3 is shared: its own name
    assert cli_main(["init", "--data", "data.csv", "--target", "target", "--name", name,
                     "--register"]) == 0  # fmt: skip
    registry = open_registry(get_settings(model_name=name))
    assert list(read_config(registry).contract.classes) == classes

    server = start_model_server({**s3_server.env(), "MLOPS_MODEL_NAME": name}, name,
                                options=ServeOptions(log_flush_seconds=0.5))  # fmt: skip
    monkeypatch.setenv("MLOPS_SERVING_URL", server.url)  # where `mlops train` deploys
    monkeypatch.setenv("MLOPS_CANARY_POLL_S", "0.5")

    def users(seed: int) -> Traffic:
        rows = frame.sample(frac=1.0, random_state=seed)  # every row, in another order
        return Traffic(server.url, name, rows, "target", registry.store, classes=classes)

    try:
        assert cli_main(["check", "--name", name, "--data", "data.csv"]) == 0
        assert cli_main(["train", "--name", name, "--data", "data.csv"]) == 0
        out = capsys.readouterr().out
        assert "passed=True" in out.replace(" ", "") and "registered v1" in out
        assert registry.aliases() == {"champion": 1}

        # Users ask; their answers are the class and every class's probability.
        answer = httpx.post(f"{server.url}/v1/models/{name}:predict",
                            json={"instances": frame.drop(columns="target").head(8)
                                  .to_dict("records")})  # fmt: skip
        body = answer.json()
        assert answer.status_code == 200 and body["classes"] == classes
        assert set(body["predictions"]) <= set(classes)
        assert np.allclose(np.sum(body["probabilities"], axis=1), 1.0)

        # Their labels arrive; the drift check reads the window back from the serving logs.
        with users(seed=1) as traffic:
            logged = wait_for_logged(registry, rows=len(frame) + 50)
        assert traffic.report.failed == 0 and traffic.report.labels_attached > 0
        assert set(logged["label"].dropna()) <= set(classes)
        accuracy = np.mean([classes[int(i)] == label
                            for i, label in zip(logged["prediction"], logged["label"], strict=True)])  # fmt: skip
        assert accuracy > 0.9  # the logged answers match the labels attached to them
        assert cli_main(["drift", "--name", name]) == 0
        out = capsys.readouterr().out.replace(" ", "")
        assert "status='no_drift'" in out and "drifted=False" in out, out

        # The same data again: a canary, judged on labelled traffic by log loss, promoted.
        with users(seed=2) as traffic:
            code = cli_main(["train", "--name", name, "--data", "data.csv", "--percent", "50",
                             "--max-wait-s", "300"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0 and "registered v2" in out, out
        assert "promote:" in out and "log loss" in out, out
        assert registry.alias("champion") == 2 and registry.alias("previous") == 1
        assert traffic.report.by_version["2"] > 0 and traffic.report.failed == 0

        # A version that guesses: loaded (task and classes fit), then caught by its log loss.
        guesser = register_a_guesser(registry, frame, classes)
        assert deploy(version=guesser, percent=50, model_name=name, reason="test") == "canary"
        with users(seed=3):
            record = canary_analysis(model_name=name, max_wait_s=300)
        verdict = record.verdict
        assert verdict.action == "rollback" and verdict.basis == "evidence", verdict.reasons
        assert record.canary.loss_name == "log loss" and record.canary.losses.n > 0
        assert record.canary.losses.mean > 1.5 * record.stable.losses.mean
        assert registry.alias("champion") == 2 and registry.alias("canary") is None

        # Another model's flows pointed at this server: refused before any change, since its
        # version numbers would name this model's versions.
        with pytest.raises(ServingTargetError, match=f"serves '{name}', not 'house-price'"):
            LocalServingTarget(server.url, "house-price").rollback_canary()
        assert LocalServingTarget(server.url, name).state().stable_version == 2
    finally:
        server.stop()
