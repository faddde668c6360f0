"""A classifier through the offline loop: with breast-cancer's configuration registered
(`mlops init --register`, its target as text labels, so classification), ci-checks passes the
gate against the training class prior, retrain registers a signed version whose manifest says
classification and its classes, and a second retrain on the same data is compared with that
version as champion and not refused for losing to it. The model server refuses the version
with a clear reason: classification serving is not supported yet.

Real SeaweedFS and the real flows; the data is scikit-learn's bundled breast-cancer set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from flows.ci_checks import ci_checks
from flows.cli import main as cli_main
from flows.retrain import retrain
from tasks.decisions.routing import Routing, ServeOptions
from tasks.modelserver.model import RoutedModel, RoutingRefused
from tasks.registry.configs import read_config
from tasks.registry.versions import open_registry
from tasks.settings import Settings

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


def test_a_classifier_is_checked_registered_compared_and_refused_by_the_server(
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
    assert stored.params["calibration"] == "sigmoid" and stored.params["train_rows"] == 455
    assert stored.metrics["accuracy"] > 0.9 and stored.metrics["roc_auc"] > 0.95
    assert 0 < stored.metrics["log_loss"] < 0.3
    assert stored.contract["digest"] == contract.digest()

    registry.set_alias("champion", first.version, reason="test: the first classifier serves")
    second = retrain(data=str(cancer_csv), model_name=name, reason="same data again")
    assert second.parent == first.version  # judged against the champion, and not refused
    assert second.metrics["log_loss"] == first.metrics["log_loss"]  # same data, same seed

    server = RoutedModel(registry, contract, ServeOptions(log_requests=False))
    with pytest.raises(RoutingRefused, match="classification serving is not supported yet"):
        server.apply_routing(Routing(stable_version=first.version))
