"""The default classifier: histogram gradient boosting behind the regressor's preprocessing, its
probabilities calibrated where cross-validation on the training data shows it helps, class labels
as the contract's text categories.

Calibration rule. The candidate is isotonic from `ISOTONIC_MIN_ROWS` training rows (enough data
for a free-form map), sigmoid below (two parameters cannot overfit a small set), none when a class
has fewer than two training rows (no stratified fold could hold it). The candidate is fitted as
`CalibratedClassifierCV` over seeded stratified folds; its fold models give out-of-fold
probabilities and scores for every training row at no extra fit. Raw: the log loss of those
out-of-fold probabilities. Calibrated: the log loss of the same scores after the candidate's
calibrator (scikit-learn's own, one-vs-rest for several classes), fitted on the other folds'
scores and applied to each fold in turn. Calibration is kept only if it lowers the raw out-of-fold
log loss by `MIN_RELATIVE_GAIN`; otherwise the booster is refitted on all rows, uncalibrated.
Boosting on a small, easy set is confident and mostly right, and a calibrator fitted on a few
hundred rows pulls its sure answers toward the middle: holdout log loss rises (wine, breast
cancer); on larger noisy sets calibration lowers it. Guarantees: the choice rests on training data
only, is the same for the same data and seed, and its numbers are returned with it. Cost: the
folds' fits (as before) plus one refit of the booster when calibration is dropped, and
`folds` x classes one-dimensional calibrator fits.

Monotonic constraints are not applied: scikit-learn refuses them for more than two classes, and
"increasing" names no class; directional checks are regression-only for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from tasks.data.contract import DataContract, class_text

ISOTONIC_MIN_ROWS = 1000
CALIBRATION_FOLDS = 5
MIN_RELATIVE_GAIN = 0.02  # calibration must cut out-of-fold log loss by 2% to be kept


class ClassLabelError(ValueError):
    """The training target holds labels the contract does not list, or no label at all."""


@dataclass(frozen=True)
class CalibrationChoice:
    """The calibration a classifier uses and the out-of-fold evidence it was chosen on."""

    method: str  # "none" | "sigmoid" | "isotonic": what the fitted model applies
    candidate: str  # the method tried ("none" when no stratified fold could hold every class)
    folds: int
    raw_log_loss: float | None
    calibrated_log_loss: float | None
    reason: str

    def evidence(self) -> dict[str, object]:
        """JSON-ready: the candidate, folds, both out-of-fold log losses and the reason."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 6)

        return {"candidate": self.candidate, "folds": self.folds,
                "raw_oof_log_loss": rounded(self.raw_log_loss),
                "calibrated_oof_log_loss": rounded(self.calibrated_log_loss),
                "reason": self.reason}  # fmt: skip


def class_labels(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """The training target as text labels; refused if one is missing or not a contract class."""
    target = contract.target.name
    missing = int(frame[target].isna().sum())
    if missing:
        raise ClassLabelError(f"target column {target!r} has {missing} rows without a class")
    labels = class_text(frame[target]).to_numpy()
    classes, present = list(contract.classes or ()), set(labels)
    unknown = sorted(present - set(classes))
    if unknown:
        raise ClassLabelError(
            f"target column {target!r} holds {unknown[:5]}, not among the contract's classes"
            f" {classes}"
        )
    absent = [label for label in classes if label not in present]
    if absent:  # the model could never answer them, and the model server would refuse it
        raise ClassLabelError(
            f"class(es) {absent} of the contract have no training rows in {target!r}: a model"
            " trained without them cannot answer them (more data, or a contract without them)"
        )
    return labels


def calibration_method(labels: np.ndarray) -> tuple[str, int]:
    """The candidate ("isotonic" | "sigmoid" | "none") and its folds for these training labels."""
    smallest = int(pd.Series(labels).value_counts().min())
    if smallest < 2:
        return "none", 0
    method = "isotonic" if len(labels) >= ISOTONIC_MIN_ROWS else "sigmoid"
    return method, min(CALIBRATION_FOLDS, smallest)


def choose_calibration(
    candidate: str, folds: int, raw: float, calibrated: float
) -> CalibrationChoice:
    """Keep the candidate only if its out-of-fold log loss beats the raw one by the margin."""
    keep = calibrated < raw * (1 - MIN_RELATIVE_GAIN)
    verdict = "kept" if keep else "dropped"
    reason = (f"{candidate} {verdict}: out-of-fold log loss {calibrated:.4g} calibrated vs"
              f" {raw:.4g} raw over {folds} folds (kept below {1 - MIN_RELATIVE_GAIN:.0%} of raw)")  # fmt: skip
    return CalibrationChoice(
        candidate if keep else "none", candidate, folds, raw, calibrated, reason
    )


def build_classifier(
    preprocess: ColumnTransformer, labels: np.ndarray, seed: int, params: dict[str, object]
) -> tuple[Pipeline, str]:
    """The unfitted candidate pipeline for these labels and its calibration candidate;
    `fit_classifier` fits it and decides whether the calibration stays."""
    boosting = HistGradientBoostingClassifier(
        max_iter=int(params["max_iter"]),
        learning_rate=float(params["learning_rate"]),
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        l2_regularization=float(params["l2_regularization"]),
        random_state=seed,
    )
    method, folds = calibration_method(labels)
    if method == "none":
        return Pipeline([("preprocess", preprocess), ("classifier", boosting)]), method
    calibrated = CalibratedClassifierCV(boosting, method=method, cv=_folds(folds, seed))
    return Pipeline([("preprocess", preprocess), ("classifier", calibrated)]), method


def fit_classifier(
    preprocess: ColumnTransformer,
    features: pd.DataFrame,
    labels: np.ndarray,
    seed: int,
    params: dict[str, object],
) -> tuple[Pipeline, CalibrationChoice]:
    """The fitted classifier, calibrated only where out-of-fold log loss says it helps, and the
    choice with its evidence; same data and seed, same model and choice."""
    model, candidate = build_classifier(preprocess, labels, seed, params)
    model.fit(features, labels)
    if candidate == "none":
        reason = "a class has fewer than 2 training rows: no stratified fold could hold it"
        return model, CalibrationChoice("none", "none", 0, None, None, reason)
    matrix = model.named_steps["preprocess"].transform(features)
    calibrated = model.named_steps["classifier"]
    raw, recalibrated = out_of_fold_log_loss(calibrated, matrix, labels, seed)
    choice = choose_calibration(candidate, calibrated.cv.n_splits, raw, recalibrated)
    if choice.method == "none":
        booster = clone(calibrated.estimator).fit(matrix, labels)
        model = Pipeline([("preprocess", model.named_steps["preprocess"]), ("classifier", booster)])
    return model, choice


def out_of_fold_log_loss(
    calibrated: CalibratedClassifierCV, matrix: np.ndarray, labels: np.ndarray, seed: int
) -> tuple[float, float]:
    """(raw, calibrated) out-of-fold log loss of a fitted ensemble `CalibratedClassifierCV`:
    each fold's booster scores the rows it did not see; the calibrator for a fold is fitted on
    the other folds' scores (nested, so no row calibrates its own score)."""
    splits = list(_folds(calibrated.cv.n_splits, seed).split(matrix, labels))
    classes = calibrated.classes_
    proba = np.zeros((len(labels), len(classes)))
    scores = np.zeros((len(labels),) if len(classes) == 2 else (len(labels), len(classes)))
    for (_, test), pair in zip(splits, calibrated.calibrated_classifiers_, strict=True):
        proba[test] = pair.estimator.predict_proba(matrix[test])
        scores[test] = pair.estimator.decision_function(matrix[test])
    nested = np.zeros_like(proba)
    for _, test in splits:
        rest = np.setdiff1d(np.arange(len(labels)), test)
        calibrator = CalibratedClassifierCV(
            FrozenEstimator(_scores_as_decision(classes)), method=calibrated.method
        )
        calibrator.fit(_column(scores[rest]), labels[rest])
        nested[test] = calibrator.predict_proba(_column(scores[test]))
    return log_loss(labels, proba, labels=classes), log_loss(labels, nested, labels=classes)


def _folds(folds: int, seed: int) -> StratifiedKFold:
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)


def _column(scores: np.ndarray) -> np.ndarray:
    return scores.reshape(-1, 1) if scores.ndim == 1 else scores


def _scores_as_decision(classes: np.ndarray) -> LogisticRegression:
    """A classifier whose decision function is its input, so scikit-learn's own calibrators
    (the exact maps `CalibratedClassifierCV` fits) can be fitted on stored out-of-fold scores."""
    width = 1 if len(classes) == 2 else len(classes)
    identity = LogisticRegression()
    identity.classes_ = classes
    identity.coef_ = np.eye(width) if width > 1 else np.ones((1, 1))
    identity.intercept_ = np.zeros(width)
    identity.n_features_in_ = width
    return identity
