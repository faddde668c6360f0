"""The default classifier: histogram gradient boosting behind the regressor's preprocessing, its
probabilities calibrated by cross-validation, class labels as the contract's text categories.

Calibration: isotonic from `ISOTONIC_MIN_ROWS` training rows (enough data for a free-form map),
sigmoid below (two parameters cannot overfit a small set), none when a class has fewer than two
training rows (no stratified fold could hold it). Monotonic constraints are not applied: scikit-learn
refuses them for more than two classes, and "increasing" names no class; directional checks are
regression-only for the same reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from tasks.data.contract import DataContract

ISOTONIC_MIN_ROWS = 1000
CALIBRATION_FOLDS = 5


class ClassLabelError(ValueError):
    """The training target holds labels the contract does not list, or no label at all."""


def class_labels(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """The training target as text labels; refused if one is missing or not a contract class."""
    target = contract.target.name
    missing = int(frame[target].isna().sum())
    if missing:
        raise ClassLabelError(f"target column {target!r} has {missing} rows without a class")
    labels = frame[target].astype(str).to_numpy()
    unknown = sorted(set(labels) - set(contract.classes or ()))
    if unknown:
        raise ClassLabelError(
            f"target column {target!r} holds {unknown[:5]}, not among the contract's classes"
            f" {list(contract.classes or ())}"
        )
    return labels


def calibration_method(labels: np.ndarray) -> tuple[str, int]:
    """("isotonic" | "sigmoid" | "none", folds) for these training labels."""
    smallest = int(pd.Series(labels).value_counts().min())
    if smallest < 2:
        return "none", 0
    method = "isotonic" if len(labels) >= ISOTONIC_MIN_ROWS else "sigmoid"
    return method, min(CALIBRATION_FOLDS, smallest)


def build_classifier(
    preprocess: ColumnTransformer, labels: np.ndarray, seed: int, params: dict[str, object]
) -> tuple[Pipeline, str]:
    """The unfitted pipeline for these training labels and the calibration it uses."""
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
    calibrated = CalibratedClassifierCV(
        boosting,
        method=method,
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed),
    )
    return Pipeline([("preprocess", preprocess), ("classifier", calibrated)]), method
