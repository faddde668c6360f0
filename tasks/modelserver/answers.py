"""What one model version answers for a batch of rows, for regressors and classifiers alike.

A regressor answers one number per row. A classifier answers a class per row and the probability
of every class, in the order of the model configuration's classes (the contract's target
categories; a class the model never saw gets 0). Both carry `values`, one number per row, which
the counters and the serving logs' `prediction` column hold: the regressor's prediction, the
classifier's class index. A classifier's probabilities go to the logs as `proba_<index>`.

On the wire (model.py): V1 answers `predictions` (numbers, or class labels) and, for a classifier,
`probabilities` (one list per row) and `classes`; V2 answers a `predict` tensor (FP64, or BYTES
class labels) and, for a classifier, a `probabilities` FP64 tensor [rows, classes] whose
`classes` parameter lists the labels in column order (a JSON list).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from kserve.protocol.infer_type import InferOutput

from tasks.decisions.routing import bad_prediction_reason

PROBABILITY_SLACK = 1e-6  # how far a row's probabilities may sum from 1 (float rounding)


PROBA_PREFIX = "proba_"


def proba_column(index: int) -> str:
    """The serving logs' column holding the probability of class `index`."""
    return f"{PROBA_PREFIX}{index}"


@dataclass(frozen=True)
class Answer:
    """One version's answer to one batch: `values` per row, and a classifier's probabilities."""

    values: list[float]
    probabilities: list[list[float]] | None = None
    classes: tuple[str, ...] | None = None

    def problem(self, expected: int) -> str | None:
        """Why this answer cannot be served (wrong count, NaN/inf, probabilities that are not a
        distribution over the classes), or None if it can."""
        reason = bad_prediction_reason(self.values, expected)
        if reason or self.probabilities is None:
            return reason
        width = len(self.classes or ())
        for row in self.probabilities:
            if len(row) != width or not all(math.isfinite(p) and p >= 0 for p in row):
                return f"returned probabilities {row!r:.80} that are not {width} finite values >= 0"
            if abs(sum(row) - 1.0) > PROBABILITY_SLACK:
                return f"returned probabilities summing to {sum(row):.6g}, not 1"
        return None

    def labels(self) -> list[str]:
        """A classifier's class per row (its most probable class)."""
        classes = self.classes or ()
        return [classes[int(value)] for value in self.values]

    def v1(self) -> dict[str, object]:
        """The V1 body's answer fields."""
        if self.probabilities is None:
            return {"predictions": self.values}
        classes = list(self.classes or ())
        return {
            "predictions": self.labels(),
            "probabilities": self.probabilities,
            "classes": classes,
        }

    def v2(self) -> list[InferOutput]:
        """The V2 outputs: `predict`, and a classifier's `probabilities`."""
        rows = len(self.values)
        if self.probabilities is None:
            return [InferOutput("predict", [rows], "FP64", self.values)]
        classes = list(self.classes or ())
        flat = [p for row in self.probabilities for p in row]
        return [
            InferOutput("predict", [rows], "BYTES", self.labels()),
            InferOutput(
                "probabilities",
                [rows, len(classes)],
                "FP64",
                flat,
                parameters={"classes": json.dumps(classes)},
            ),
        ]


def predict_rows(model: object, rows: list[list], columns: list[str]) -> list[float]:
    """A regressor's predictions for rows in `columns` order (named columns, as it was fitted)."""
    return [float(value) for value in model.predict(pd.DataFrame(rows, columns=columns))]


def answer_rows(
    model: object, rows: list[list], columns: list[str], classes: tuple[str, ...] | None = None
) -> Answer:
    """The model's answer for rows in `columns` order (named columns, as it was fitted); with
    `classes`, a classifier's: probabilities in that order and the most probable class."""
    if classes is None:
        return Answer(predict_rows(model, rows, columns))
    from tasks.training.classification import probabilities

    proba = probabilities(model, pd.DataFrame(rows, columns=columns), classes)
    chosen = proba.argmax(axis=1) if len(proba) else np.empty(0, int)
    return Answer([float(i) for i in chosen], proba.tolist(), classes)
