"""Training: a deterministic scikit-learn Pipeline built from the data contract alone.

The fitted model holds only scikit-learn and numpy objects, so KServe's stock sklearn runtime can
load the same `model.joblib`. Its input is the contract's feature columns in contract order, as a
DataFrame or as plain rows (lists); columns are picked by position, not by name.

With the policy's search on (`params["search"]`, tasks/training/search.py), the searched
parameters are chosen first, on the training part alone, and the model is then trained with them
on the whole training part; its `params` record the values used and the search's summary.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from tasks.data.contract import DataContract
from tasks.training.classifier import build_classifier, class_labels, fit_classifier
from tasks.training.policy import SearchPolicy
from tasks.training.search import search_parameters, uncalibrated

DEFAULT_PARAMS: dict[str, object] = {
    "max_iter": 300,
    "learning_rate": 0.08,
    "max_leaf_nodes": 31,
    "l2_regularization": 0.1,
    "target_transform": "none",
}


class TargetTransformError(ValueError):
    """The declared target transform cannot apply to this training data."""


@dataclass(frozen=True)
class TrainedModel:
    model: TransformedTargetRegressor | Pipeline
    params: dict[str, object]
    seconds: float
    rows: int


def preprocessing(contract: DataContract) -> tuple[ColumnTransformer, list[int], list[int]]:
    """Median-imputed numeric columns and one-hot categories, by position in contract order; the
    positions of the numeric and the categorical columns."""
    numeric = [i for i, column in enumerate(contract.columns) if column.is_numeric]
    categorical = [i for i, column in enumerate(contract.columns) if not column.is_numeric]
    encoder = OneHotEncoder(
        categories=[list(contract.columns[i].categories or ()) for i in categorical],
        handle_unknown="ignore",
        sparse_output=False,
    )
    preprocess = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), numeric),
            ("categorical", encoder, categorical),
        ],
        remainder="drop",
    )
    return preprocess, numeric, categorical


def build_pipeline(contract: DataContract, seed: int, params: dict[str, object]) -> object:
    """Preprocessing + gradient boosting, with the contract's monotonic constraints enforced."""
    preprocess, numeric, categorical = preprocessing(contract)
    direction = {"increasing": 1, "decreasing": -1, None: 0}
    one_hot_width = sum(len(contract.columns[i].categories or ()) for i in categorical)
    monotonic = [direction[contract.columns[i].monotonic] for i in numeric] + [0] * one_hot_width
    regressor = HistGradientBoostingRegressor(
        max_iter=int(params["max_iter"]),
        learning_rate=float(params["learning_rate"]),
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        l2_regularization=float(params["l2_regularization"]),
        monotonic_cst=monotonic,
        random_state=seed,
    )
    pipeline = Pipeline([("preprocess", preprocess), ("regressor", regressor)])
    if params.get("target_transform") == "log":
        return TransformedTargetRegressor(regressor=pipeline, func=np.log, inverse_func=np.exp)
    return pipeline


def check_target_transform(frame: pd.DataFrame, contract: DataContract, transform: str) -> None:
    """Refuse, before fitting, a transform the training target cannot take (log of y <= 0)."""
    if transform not in {"none", "log"}:
        raise TargetTransformError(f"unknown target_transform {transform!r}: use 'none' or 'log'")
    target = contract.target.name
    lowest = float(frame[target].min())
    if transform == "log" and not lowest > 0:
        raise TargetTransformError(
            f"target_transform 'log' needs a strictly positive target, but column {target!r} has"
            f" minimum {lowest:.6g} in the training data; use target_transform 'none'"
        )


def train_model(
    frame: pd.DataFrame, contract: DataContract, seed: int, params: dict[str, object] | None = None
) -> TrainedModel:
    """Fit the pipeline on the contract's features and target; same data + seed, same model
    (with a search on: as long as it ends within its budget). `seconds` includes the search."""
    params = {**DEFAULT_PARAMS, **(params or {})}
    search = SearchPolicy.model_validate(params.pop("search", None) or {})
    if contract.task == "classification":
        return _train_classifier(frame, contract, seed, params, search)
    check_target_transform(frame, contract, str(params["target_transform"]))
    features = frame[contract.feature_names]
    target = frame[contract.target.name].to_numpy(dtype=float)
    started = time.perf_counter()
    if search.enabled:
        model = build_pipeline(contract, seed, params)
        params = _searched(model, (features, target), params, search, seed)
    model = build_pipeline(contract, seed, params)
    model.fit(features, target)
    return TrainedModel(model, params, time.perf_counter() - started, len(frame))


def _searched(
    model: object,
    data: tuple[pd.DataFrame, np.ndarray],
    params: dict[str, object],
    search: SearchPolicy,
    seed: int,
) -> dict[str, object]:
    """`params` with the searched values replaced by the search's choice on `model` (the
    unfitted pipeline they build), and the search's summary under "search"."""
    outcome = search_parameters(model, *data, search, seed)
    return {**params, **outcome.params, "search": outcome.summary.record()}


def _train_classifier(
    frame: pd.DataFrame,
    contract: DataContract,
    seed: int,
    params: dict[str, object],
    search: SearchPolicy,
) -> TrainedModel:
    """The classifier (tasks/training/classifier.py) on text labels; a target transform is a
    regression setting and is refused here rather than silently ignored. A search runs on the
    boosting without its calibration (cross-validated, many times the cost); the final model is
    calibrated only where that lowers out-of-fold log loss (`fit_classifier`)."""
    if params["target_transform"] != "none":
        raise TargetTransformError(
            f"target_transform {params['target_transform']!r} applies to regression only; the"
            f" target {contract.target.name!r} is a class: use target_transform 'none'"
        )
    labels = class_labels(frame, contract)
    features = frame[contract.feature_names]
    started = time.perf_counter()
    if search.enabled:
        model, _ = build_classifier(preprocessing(contract)[0], labels, seed, params)
        params = _searched(uncalibrated(model), (features, labels), params, search, seed)
    model, calibration = fit_classifier(preprocessing(contract)[0], features, labels, seed, params)
    params = {**params, "calibration": calibration.method,
              "calibration_evidence": calibration.evidence()}  # fmt: skip
    return TrainedModel(model, params, time.perf_counter() - started, len(frame))


def library_versions() -> dict[str, str]:
    """Versions the serving runtime must match (scikit-learn above all)."""
    import joblib

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }
