"""A classifier's drift check: its target is compared as classes, however each side was read.

The reference is breast cancer as a CSV loads it (target 0/1 as integers); the current window is
what the serving logs hold (labels attached as the contract's text, "0"/"1"). Without turning
both into the contract's class text the two would share no category: the target would drift
and be off the contract on every check.
"""

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from tasks.data.inference import infer_config
from tasks.decisions.drift import DriftPolicy
from tasks.drift.check import check_drift
from tasks.drift.stats import column_drift

POLICY = DriftPolicy()


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


@pytest.fixture(scope="module")
def classifier_contract(cancer):
    config, _ = infer_config(cancer, "target", "breast-cancer")
    assert config.contract.task == "classification" and config.contract.classes == ("0", "1")
    return config.contract


def as_logged(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as the drift flow reads them back from the logs: labels as text."""
    return frame.assign(target=frame["target"].map({0: "0", 1: "1"}).astype(object))


def target_of(columns):
    (target,) = [column for column in columns if column.role == "target"]
    return target


def test_integer_reference_and_text_labels_are_the_same_classes(cancer, classifier_contract):
    current = as_logged(cancer.sample(frac=1.0, random_state=3))
    assert current["target"].dtype == object and cancer["target"].dtype.kind == "i"
    target = target_of(column_drift(cancer, current, classifier_contract, POLICY))
    assert (target.kind, target.status, target.drifted) == ("categorical", "judged", False)
    assert target.score < 0.01 and target.unseen_share == 0.0
    assert (
        target.off_contract.checked == len(cancer) and target.off_contract.unknown_categories == 0
    )


def test_a_shifted_class_balance_is_target_drift_in_both_passes(cancer, classifier_contract):
    malignant = cancer[cancer["target"] == 0]  # class "0" is malignant in scikit-learn's coding
    current = as_logged(pd.concat([malignant, cancer.head(100)]))  # mostly class "0" now
    report = check_drift(cancer, current, classifier_contract, POLICY)
    exact = target_of(report.columns)
    assert exact.kind == "categorical" and exact.drifted, exact
    assert exact.off_contract.unknown_categories == 0
    assert "target" in report.verdict.drifted_columns
    assert report.sample_verdict is not None and "target" in report.sample_verdict.drifted_columns


def test_a_label_outside_the_classes_is_off_the_contract(cancer, classifier_contract):
    current = as_logged(cancer)
    current.loc[current.index[:60], "target"] = "2"  # 10.5% of the window: past the 2% tolerated
    target = target_of(column_drift(cancer, current, classifier_contract, POLICY))
    assert target.off_contract.unknown_categories == 60 and target.off_contract.exceeded
    assert target.drifted and target.unseen == {"2": pytest.approx(60 / len(cancer))}
