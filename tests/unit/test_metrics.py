"""Regression metrics on known values; MAPE only where it is defined."""

import numpy as np
import pandas as pd
import pytest

from tasks.training.evaluation import baseline_metrics, positive_target, regression_metrics


def test_known_values() -> None:
    metrics = regression_metrics(
        np.array([100.0, 200.0, 300.0]), np.array([110.0, 190.0, 330.0]), with_mape=True
    )
    assert metrics["mae"] == pytest.approx(50 / 3)
    assert metrics["rmse"] == pytest.approx(np.sqrt((100 + 100 + 900) / 3))
    assert metrics["mape"] == pytest.approx((0.1 + 0.05 + 0.1) / 3)
    assert metrics["r2"] == pytest.approx(1 - 1100 / 20000)


def test_a_target_around_zero_gets_no_mape() -> None:
    metrics = regression_metrics(np.array([-1.0, 0.0, 1.0]), np.array([-0.5, 0.5, 1.0]))
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["mae"] == pytest.approx(1 / 3)
    assert all(np.isfinite(value) for value in metrics.values())


def test_non_finite_predictions_are_infinitely_bad() -> None:
    metrics = regression_metrics(np.array([1.0, 2.0]), np.array([1.0, np.nan]))
    assert metrics["rmse"] == np.inf
    assert metrics["r2"] == -np.inf
    assert "mape" not in metrics
    assert regression_metrics(np.array([1.0]), np.array([np.inf]), with_mape=True)["mape"] == np.inf


def test_mape_follows_the_contract_s_declared_target_minimum(contract) -> None:
    assert positive_target(contract)  # house prices: min 20000
    for minimum in (None, 0.0, -5.0):
        target = contract.target.model_copy(update={"min": minimum})
        assert not positive_target(contract.model_copy(update={"target": target}))


def test_the_baseline_is_the_training_median_for_every_row(contract) -> None:
    train = pd.DataFrame({"price": [100.0, 200.0, 900.0]})
    holdout = pd.DataFrame({"price": [150.0, 250.0]})
    baseline = baseline_metrics(train, holdout, contract)
    assert baseline["mae"] == pytest.approx(50.0)  # the median 200, never the mean 400
    assert baseline["mape"] == pytest.approx((50 / 150 + 50 / 250) / 2)
