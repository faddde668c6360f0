"""Regression metrics on known values."""

import numpy as np
import pytest

from tasks.training.evaluation import regression_metrics


def test_known_values() -> None:
    metrics = regression_metrics(np.array([100.0, 200.0, 300.0]), np.array([110.0, 190.0, 330.0]))
    assert metrics["mae"] == pytest.approx(50 / 3)
    assert metrics["rmse"] == pytest.approx(np.sqrt((100 + 100 + 900) / 3))
    assert metrics["mape"] == pytest.approx((0.1 + 0.05 + 0.1) / 3)
    assert metrics["r2"] == pytest.approx(1 - 1100 / 20000)


def test_non_finite_predictions_are_infinitely_bad() -> None:
    metrics = regression_metrics(np.array([1.0, 2.0]), np.array([1.0, np.nan]))
    assert metrics["rmse"] == np.inf
    assert metrics["r2"] == -np.inf
