"""Evaluation on a holdout: error metrics, error per slice, a naive baseline's error, and
behavioural checks from the contract. Nothing assumes the target's sign: MAPE is reported only for a
target the contract declares strictly positive. A classification contract is evaluated by
tasks/training/classification.py (accuracy, log loss, ROC AUC; the training class prior)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.data.contract import ColumnSpec, DataContract
from tasks.decisions.gate import BehaviourCheck, Evaluation, SliceError
from tasks.training.classification import evaluate_classifier, prior_baseline
from tasks.training.probes import behaviour_sample, edge_rows, shifted_category, slice_labels


def positive_target(contract: DataContract) -> bool:
    """Whether the contract declares the target strictly positive (MAPE and prices make sense)."""
    return contract.target.min is not None and contract.target.min > 0


def regression_metrics(
    truth: np.ndarray, predicted: np.ndarray, with_mape: bool = False
) -> dict[str, float]:
    """RMSE, MAE, R² (and MAPE when asked: for a strictly positive target only); non-finite
    predictions make every metric infinite."""
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    if not np.isfinite(predicted).all():
        worst = {"rmse": np.inf, "mae": np.inf, "r2": -np.inf, "mape": np.inf}
        return worst if with_mape else {k: v for k, v in worst.items() if k != "mape"}
    error = predicted - truth
    total = float(((truth - truth.mean()) ** 2).sum())
    metrics = {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": 1 - float((error**2).sum()) / total if total > 0 else 0.0,
    }
    if with_mape:
        metrics["mape"] = float(np.mean(np.abs(error) / np.maximum(np.abs(truth), 1e-9)))
    return metrics


def baseline_metrics(
    train: pd.DataFrame, holdout: pd.DataFrame, contract: DataContract
) -> dict[str, float]:
    """The naive baseline every candidate must beat: the training median for every holdout row
    (for a classifier, the training class prior)."""
    if contract.task == "classification":
        return prior_baseline(train, holdout, contract)
    truth = holdout[contract.target.name].to_numpy(float)
    median = float(np.median(train[contract.target.name].to_numpy(float)))
    return regression_metrics(truth, np.full(len(truth), median), positive_target(contract))


def slice_errors(
    holdout: pd.DataFrame, predicted: np.ndarray, contract: DataContract
) -> list[SliceError]:
    """Error per slice for every contract column marked `slice` or given `slice_bins`."""
    truth = holdout[contract.target.name].to_numpy(float)
    with_mape = positive_target(contract)
    found = []
    for spec in contract.columns:
        if not (spec.slice or spec.slice_bins):
            continue
        labels = slice_labels(spec, holdout[spec.name])
        for value in sorted(labels.unique()):
            mask = (labels == value).to_numpy()
            numbers = regression_metrics(truth[mask], predicted[mask], with_mape)
            found.append(
                SliceError(
                    column=spec.name,
                    value=value,
                    rows=int(mask.sum()),
                    mae=numbers["mae"],
                    rmse=numbers["rmse"],
                    mape=numbers.get("mape"),
                )
            )
    return found


def _directional(model, sample: pd.DataFrame, spec: ColumnSpec, base: np.ndarray) -> BehaviourCheck:
    span = (spec.max or 0) - (spec.min or 0) if spec.max is not None else sample[spec.name].std()
    bumped = sample.copy()
    bumped[spec.name] = (bumped[spec.name] + 0.05 * span).clip(upper=spec.max)
    moved = model.predict(bumped) - base
    wrong = (
        moved < -1e-6 * np.abs(base)
        if spec.monotonic == "increasing"
        else moved > 1e-6 * np.abs(base)
    )
    worst = float(np.max(np.abs(moved[wrong] / base[wrong]))) if wrong.any() else 0.0
    return BehaviourCheck(
        kind="directional",
        column=spec.name,
        cases=len(sample),
        failures=int(wrong.sum()),
        worst=worst,
        detail=f"+5% of range on {spec.name} must move the price {spec.monotonic}",
    )


def _invariance(model, sample: pd.DataFrame, spec: ColumnSpec, base: np.ndarray) -> BehaviourCheck:
    change = np.abs(model.predict(shifted_category(sample, spec)) - base) / np.abs(base)
    return BehaviourCheck(
        kind="invariance",
        column=spec.name,
        cases=len(sample),
        failures=0,
        worst=float(np.mean(change)),
        detail=f"changing {spec.name} must leave the price alone (mean relative change)",
    )


def _edge_cases(model, contract: DataContract, sample: pd.DataFrame) -> BehaviourCheck:
    edges = edge_rows(contract, sample)
    predicted = np.asarray(model.predict(edges), float)
    positive = positive_target(contract)
    bad = ~np.isfinite(predicted) | (positive & (predicted <= 0))
    return BehaviourCheck(
        kind="edge-cases",
        column=None,
        cases=len(edges),
        failures=int(bad.sum()),
        worst=float(np.nan_to_num(np.max(np.abs(predicted)), posinf=1e300)),
        detail="all features at their contract minimum / maximum must give a finite"
        + (" positive" if positive else "")
        + " prediction",
    )


def behaviour_checks(model, holdout: pd.DataFrame, contract: DataContract, seed: int) -> list:
    """Directional checks for monotonic columns, invariance for invariant ones, edge cases."""
    sample = behaviour_sample(holdout, contract, seed)
    base = np.asarray(model.predict(sample), float)
    checks = [_edge_cases(model, contract, sample)]
    for spec in contract.columns:
        if spec.monotonic:
            checks.append(_directional(model, sample, spec, base))
        if spec.invariant and spec.categories:
            checks.append(_invariance(model, sample, spec, base))
    return checks


def evaluate_model(
    model,
    holdout: pd.DataFrame,
    contract: DataContract,
    seed: int,
    baseline: dict[str, float] | None = None,
) -> Evaluation:
    """Score a model on a holdout: metrics, slices and behaviour, with the naive baseline's
    metrics on the same holdout when given (`baseline_metrics`; the gate needs it for a candidate)."""
    if contract.task == "classification":
        return evaluate_classifier(model, holdout, contract, seed, baseline)
    predicted = np.asarray(model.predict(holdout[contract.feature_names]), float)
    truth = holdout[contract.target.name].to_numpy(float)
    return Evaluation(
        rows=len(holdout),
        metrics=regression_metrics(truth, predicted, positive_target(contract)),
        slices=slice_errors(holdout, predicted, contract),
        behaviour=behaviour_checks(model, holdout, contract, seed),
        baseline=baseline,
    )
