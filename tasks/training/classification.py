"""A classifier on a holdout: accuracy, log loss and ROC AUC, the same per slice, the naive
baseline (the training class prior for every row), and the behavioural checks that make sense for
classes (edge cases, invariance; directional checks are regression-only).

Probabilities are read in the contract's class order whatever the model's `classes_` order; a
contract class the model never saw gets probability 0. ROC AUC is on the second contract class
for two classes (the same number for either class), one-vs-rest macro for more, over the classes
present in the holdout; it is left out when the holdout holds one class only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from tasks.data.contract import DataContract, class_text
from tasks.decisions.gate import BehaviourCheck, Evaluation, SliceError
from tasks.training.probes import behaviour_sample, edge_rows, shifted_category, slice_labels

EPSILON = 1e-15  # log loss clips probabilities here, as scikit-learn does


def probabilities(model, features: pd.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    """`predict_proba` with one column per contract class, in contract order."""
    proba = np.asarray(model.predict_proba(features), float)
    known = [str(label) for label in model.classes_]
    ordered = np.zeros((len(features), len(classes)))
    for column, label in enumerate(known):
        if label in classes:
            ordered[:, classes.index(label)] = proba[:, column]
    return ordered


def classification_metrics(
    truth: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]
) -> dict[str, float]:
    """Accuracy, log loss and (when defined) ROC AUC; non-finite probabilities are the worst."""
    if not np.isfinite(proba).all():
        return {"accuracy": 0.0, "log_loss": np.inf}
    index = np.array([classes.index(t) if t in classes else -1 for t in truth])
    predicted = proba.argmax(axis=1)
    chosen = np.where(index >= 0, proba[np.arange(len(truth)), np.maximum(index, 0)], 0.0)
    metrics = {
        "accuracy": float(np.mean(predicted == index)),
        "log_loss": float(-np.mean(np.log(np.clip(chosen, EPSILON, 1.0)))),
    }
    present = [i for i in range(len(classes)) if (index == i).any()]
    if len(present) >= 2:
        if len(classes) == 2:
            metrics["roc_auc"] = float(roc_auc_score(index == 1, proba[:, 1]))
        else:
            scores = [roc_auc_score(index == i, proba[:, i]) for i in present]
            metrics["roc_auc"] = float(np.mean(scores))
    return metrics


def truth_of(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    return class_text(frame[contract.target.name]).to_numpy()


def prior_baseline(
    train: pd.DataFrame, holdout: pd.DataFrame, contract: DataContract
) -> dict[str, float]:
    """The naive baseline: the training set's class shares as every holdout row's probabilities."""
    classes = contract.classes or ()
    counts = pd.Series(truth_of(train, contract)).value_counts()
    prior = np.array([counts.get(label, 0) for label in classes], float) / len(train)
    proba = np.tile(prior, (len(holdout), 1))
    return classification_metrics(truth_of(holdout, contract), proba, classes)


def class_slices(
    holdout: pd.DataFrame, proba: np.ndarray, contract: DataContract
) -> list[SliceError]:
    """Accuracy and log loss per slice, for every contract column marked `slice` or binned."""
    truth, classes, found = truth_of(holdout, contract), contract.classes or (), []
    for spec in contract.columns:
        if not (spec.slice or spec.slice_bins):
            continue
        labels = slice_labels(spec, holdout[spec.name])
        for value in sorted(labels.unique()):
            mask = (labels == value).to_numpy()
            numbers = classification_metrics(truth[mask], proba[mask], classes)
            found.append(SliceError(column=spec.name, value=value, rows=int(mask.sum()),
                                    accuracy=numbers["accuracy"],
                                    log_loss=numbers["log_loss"]))  # fmt: skip
    return found


def _edge_cases(model, contract: DataContract, sample: pd.DataFrame) -> BehaviourCheck:
    edges = edge_rows(contract, sample)
    proba = probabilities(model, edges, contract.classes)
    bad = ~np.isfinite(proba).all(axis=1) | (np.abs(proba.sum(axis=1) - 1) > 1e-6)
    bad |= ((proba < 0) | (proba > 1)).any(axis=1)
    return BehaviourCheck(
        kind="edge-cases",
        column=None,
        cases=len(edges),
        failures=int(bad.sum()),
        worst=float(np.nan_to_num(np.max(np.abs(proba.sum(axis=1) - 1)), nan=1e300)),
        detail="all features at their contract minimum / maximum must give finite class"
        " probabilities summing to 1",
    )


def _invariance(model, sample: pd.DataFrame, spec, base: np.ndarray, classes) -> BehaviourCheck:
    shifted = shifted_category(sample, spec)
    moved = np.abs(probabilities(model, shifted, classes) - base).max(axis=1)
    return BehaviourCheck(
        kind="invariance",
        column=spec.name,
        cases=len(sample),
        failures=0,
        worst=float(np.mean(moved)),
        detail=f"changing {spec.name} must leave the class probabilities alone (mean largest"
        " change of a class probability)",
    )


def evaluate_classifier(
    model,
    holdout: pd.DataFrame,
    contract: DataContract,
    seed: int,
    baseline: dict[str, float] | None = None,
) -> Evaluation:
    """A classifier's numbers on a holdout, with the baseline's when given (`prior_baseline`)."""
    classes = contract.classes or ()
    proba = probabilities(model, holdout[contract.feature_names], classes)
    sample = behaviour_sample(holdout, contract, seed)
    base = probabilities(model, sample, classes)
    behaviour = [_edge_cases(model, contract, sample)] + [
        _invariance(model, sample, spec, base, classes)
        for spec in contract.columns
        if spec.invariant and spec.categories
    ]
    return Evaluation(
        rows=len(holdout),
        metrics=classification_metrics(truth_of(holdout, contract), proba, classes),
        slices=class_slices(holdout, proba, contract),
        behaviour=behaviour,
        baseline=baseline,
        task="classification",
    )
