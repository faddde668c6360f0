"""A classifier through the offline loop: with breast-cancer's configuration registered
(`mlops init --register`, its target as text labels, so classification), ci-checks passes the
gate against the training class prior, retrain registers a signed version whose manifest says
classification and its classes, and a second retrain on the same data is compared with that
version as champion and not refused for losing to it. The model server serves it: V1 and V2
answer the class and every class's probability (in the contract's class order), the logged rows
carry the probabilities, and the canary window's classifier scoring reads log loss on labels and
each class's probability from them.

Real SeaweedFS and the real flows; the data is scikit-learn's bundled breast-cancer set.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest
from sklearn.datasets import load_breast_cancer

from flows.ci_checks import ci_checks
from flows.cli import main as cli_main
from flows.retrain import retrain
from tasks.data.contract import load_contract
from tasks.decisions.routing import Routing, ServeOptions
from tasks.modelserver.log_writer import records_frame
from tasks.modelserver.model import RoutedModel
from tasks.registry.configs import read_config
from tasks.registry.versions import open_registry
from tasks.release.window import scoring_for, version_evidence
from tasks.settings import DEFAULT_CONTRACT, Settings

pytestmark = pytest.mark.integration
CLASSES = ["benign", "malignant"]


@pytest.fixture
def cancer_csv(tmp_path: Path) -> Path:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.copy()
    frame["target"] = frame["target"].map(dict(enumerate(data.target_names)))
    path = tmp_path / "breast-cancer.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_classifier_is_checked_registered_compared_and_served(
    flow_env: Settings, cancer_csv: Path, tmp_path: Path
) -> None:
    name = flow_env.model_name
    code = cli_main(["init", "--data", str(cancer_csv), "--target", "target", "--name", name,
                     "--out", str(tmp_path / "cancer.yaml"), "--register"])  # fmt: skip
    assert code == 0
    registry = open_registry(flow_env)
    contract = read_config(registry).contract
    assert contract.task == "classification" and list(contract.classes) == CLASSES

    verdict = ci_checks(data=str(cancer_csv), model_name=name)
    assert verdict.passed, verdict.reasons
    (baseline,) = [check for check in verdict.checks if check.name == "log_loss vs baseline"]
    assert "vs baseline (training class prior)" in baseline.reason
    assert "directional checks are regression-only: skipped for classification" in verdict.reasons

    first = retrain(data=str(cancer_csv), model_name=name, reason="first classifier")
    stored, _ = registry.load(first.version)  # verified against its signature and checksum
    assert (stored.task, stored.classes) == ("classification", CLASSES)
    assert stored.params["calibration"] in {"none", "sigmoid"}  # kept only where it helps
    assert stored.params["calibration_evidence"]["candidate"] == "sigmoid"
    assert stored.params["train_rows"] == 455
    assert stored.metrics["accuracy"] > 0.9 and stored.metrics["roc_auc"] > 0.95
    assert 0 < stored.metrics["log_loss"] < 0.3
    assert stored.contract["digest"] == contract.digest()

    registry.set_alias("champion", first.version, reason="test: the first classifier serves")
    second = retrain(data=str(cancer_csv), model_name=name, reason="same data again")
    assert second.parent == first.version  # judged against the champion, and not refused
    assert second.metrics["log_loss"] == first.metrics["log_loss"]  # same data, same seed

    # A server that read the default contract (started before the configuration was
    # registered) and serves nothing yet takes the stored one when the version does not fit it.
    early = RoutedModel(registry, load_contract(DEFAULT_CONTRACT), ServeOptions(log_requests=False))
    assert early.contract.task == "regression"
    early.apply_routing(Routing(stable_version=first.version))
    assert early.contract.digest() == contract.digest()
    row = load_breast_cancer(as_frame=True).frame[list(stored.features)].head(1)
    assert early.predict({"instances": row.to_dict(orient="records")})["classes"] == CLASSES

    server = RoutedModel(registry, contract, ServeOptions(log_requests=False))
    server.apply_routing(Routing(stable_version=first.version))
    data = load_breast_cancer(as_frame=True)
    frame = data.frame
    rows = frame[list(stored.features)].head(20)
    instances = rows.to_dict(orient="records")
    body = server.predict({"instances": instances})
    assert body["classes"] == CLASSES and body["model_version"] == first.version
    truth = [str(data.target_names[t]) for t in frame["target"].head(20)]
    assert np.mean([p == t for p, t in zip(body["predictions"], truth, strict=True)]) >= 0.9
    for label, proba in zip(body["predictions"], body["probabilities"], strict=True):
        assert math.isclose(sum(proba), 1.0, abs_tol=1e-6)
        assert CLASSES[int(np.argmax(proba))] == label

    v2 = InferRequest(
        model_name=name,
        infer_inputs=[
            InferInput(column, [len(rows)], "FP64", rows[column].tolist()) for column in rows
        ],
    )
    outputs = {out.name: out for out in server.predict(v2).outputs}
    assert outputs["predict"].datatype == "BYTES" and outputs["predict"].data == body["predictions"]
    assert outputs["probabilities"].shape == [20, 2]
    assert outputs["probabilities"].parameters["classes"] == '["benign", "malignant"]'

    # The logged rows of these answers, as the writer would write them, scored by log loss.
    from tasks.modelserver.log_writer import LogRecord

    record = LogRecord(1.7e9, "r1", first.version, rows.values.tolist(),
                       [float(CLASSES.index(p)) for p in body["predictions"]], 3.0, "ok",
                       body["probabilities"])  # fmt: skip
    logged = records_frame([record], list(stored.features)).assign(label=truth)
    assert list(logged.columns[-3:]) == ["proba_0", "proba_1", "label"]
    from datetime import UTC, datetime

    evidence = version_evidence(logged, first.version, datetime(2000, 1, 1, tzinfo=UTC),
                                datetime(2100, 1, 1, tzinfo=UTC), scoring_for(stored))  # fmt: skip
    assert evidence.loss_name == "log loss" and evidence.losses.n == 20
    expected = -np.mean(
        np.log([p[CLASSES.index(t)] for p, t in zip(body["probabilities"], truth, strict=True)])
    )
    assert math.isclose(evidence.losses.mean, expected, rel_tol=1e-9)
    assert math.isclose(evidence.predictions.mean, np.mean([p[1] for p in body["probabilities"]]))
