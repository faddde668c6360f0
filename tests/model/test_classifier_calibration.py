"""The classifier's calibration rule on real boosted models: calibration stays where out-of-fold
log loss shows it helps (noisy synthetic sets, two and three classes), goes where it hurts
(scikit-learn's wine set), and the choice is a pure function of the training data and seed."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_wine, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from tasks.data.inference import infer_config
from tasks.training.classifier import (
    MIN_RELATIVE_GAIN,
    CalibrationChoice,
    choose_calibration,
    fit_classifier,
    out_of_fold_log_loss,
)
from tasks.training.model import DEFAULT_PARAMS, preprocessing

SEED = 42
PARAMS = DEFAULT_PARAMS  # the default's 300 rounds overfit the noisy sets: what calibration mends


def labelled(features: np.ndarray, target: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(features.shape[1])])
    return frame.assign(target=np.array([f"class_{t}" for t in target]))


def fitted(frame: pd.DataFrame, seed: int = SEED) -> tuple[Pipeline, CalibrationChoice]:
    contract = infer_config(frame, "target", "calibration")[0].contract
    features, labels = frame[contract.feature_names], frame["target"].to_numpy()
    return fit_classifier(preprocessing(contract)[0], features, labels, seed, PARAMS)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One OpenMP thread: boosting's threads spin against each other on a loaded shared machine
    (a 2-second fit took minutes); the figures do not depend on it."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return labelled(*load_wine(return_X_y=True))


def noisy(classes: int) -> pd.DataFrame:
    """1,200 rows with 15% of labels flipped: enough rows for isotonic, a booster that is
    confidently wrong on the flipped ones."""
    return labelled(*make_classification(n_samples=1_200, n_features=20, n_informative=8,
                                         n_classes=classes, flip_y=0.15, random_state=SEED))  # fmt: skip


@pytest.mark.parametrize("classes", [2, 3])
def test_calibration_is_kept_where_it_lowers_out_of_fold_log_loss(classes: int) -> None:
    frame = noisy(classes)
    model, choice = fitted(frame)
    assert choice.method == choice.candidate == "isotonic" and choice.folds == 5
    assert choice.calibrated_log_loss < choice.raw_log_loss * (1 - MIN_RELATIVE_GAIN)
    assert isinstance(model.named_steps["classifier"], CalibratedClassifierCV)
    proba = model.predict_proba(frame.drop(columns="target").head(50))
    assert proba.shape == (50, classes) and np.allclose(proba.sum(axis=1), 1)
    assert list(model.classes_) == [f"class_{i}" for i in range(classes)]


def test_calibration_is_dropped_on_a_small_easy_set(wine) -> None:
    model, choice = fitted(wine)
    assert choice.method == "none" and choice.candidate == "sigmoid"  # 178 rows: under 1000
    assert choice.calibrated_log_loss > choice.raw_log_loss
    assert "sigmoid dropped" in choice.reason
    booster = model.named_steps["classifier"]
    assert (
        isinstance(booster, HistGradientBoostingClassifier)
        and booster.n_iter_ == PARAMS["max_iter"]
    )
    assert list(model.classes_) == ["class_0", "class_1", "class_2"]
    assert model.score(wine.drop(columns="target"), wine["target"]) == 1.0  # refitted on all rows


def test_the_same_data_and_seed_give_the_same_model_and_choice(wine) -> None:
    (first, choice), (second, again) = fitted(wine), fitted(wine)
    rows = wine.drop(columns="target")
    assert choice == again and json.loads(json.dumps(choice.evidence())) == again.evidence()
    assert np.array_equal(first.predict_proba(rows), second.predict_proba(rows))
    restored = pickle.loads(pickle.dumps(first))
    assert np.array_equal(restored.predict_proba(rows), first.predict_proba(rows))


def test_a_class_with_one_training_row_is_never_calibrated(wine) -> None:
    one = pd.concat([wine[wine["target"] != "class_2"], wine[wine["target"] == "class_2"].head(1)])
    model, choice = fitted(one)
    assert choice == CalibrationChoice("none", "none", 0, None, None, choice.reason)
    assert "fewer than 2 training rows" in choice.reason
    assert isinstance(model.named_steps["classifier"], HistGradientBoostingClassifier)
    assert choice.evidence()["raw_oof_log_loss"] is None


def test_out_of_fold_figures_come_from_the_rows_each_fold_did_not_see(wine) -> None:
    """The raw figure equals scikit-learn's own out-of-fold predictions with the same folds: the
    fold models are matched to the right held-out rows."""
    contract = infer_config(wine, "target", "wine")[0].contract
    matrix = preprocessing(contract)[0].fit_transform(wine[contract.feature_names])
    labels = wine["target"].to_numpy()
    booster = HistGradientBoostingClassifier(max_iter=100, random_state=SEED)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    calibrated = CalibratedClassifierCV(booster, method="sigmoid", cv=folds).fit(matrix, labels)
    raw, _ = out_of_fold_log_loss(calibrated, matrix, labels, SEED)
    expected = cross_val_predict(booster, matrix, labels, cv=folds, method="predict_proba")
    assert raw == pytest.approx(log_loss(labels, expected))


@pytest.mark.parametrize(
    ("calibrated", "method"), [(0.97, "sigmoid"), (0.99, "none"), (1.0, "none"), (1.2, "none")]
)
def test_calibration_must_beat_raw_by_the_margin(calibrated: float, method: str) -> None:
    choice = choose_calibration("sigmoid", 5, 1.0, calibrated)
    assert choice.method == method and choice.candidate == "sigmoid"
    assert (choice.raw_log_loss, choice.calibrated_log_loss) == (1.0, calibrated)
