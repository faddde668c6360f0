"""Behavioural tests on a small real model: direction, invariance, edge cases, determinism."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from tasks.data.contract import DataContract
from tasks.data.loading import split_holdout
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.gate import GatePolicy, judge_candidate
from tasks.training.evaluation import baseline_metrics, evaluate_model
from tasks.training.model import train_model


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_holdout(generate_house_prices(2500, seed=11), 0.2, seed=1)


@pytest.fixture(scope="module")
def trained(split, contract: DataContract):
    return train_model(split[0], contract, seed=1)


def checks(evaluation) -> dict[str, object]:
    return {f"{b.kind} {b.column}": b for b in evaluation.behaviour}


def test_default_model_passes_the_gate(trained, split, contract: DataContract) -> None:
    baseline = baseline_metrics(*split, contract)
    evaluation = evaluate_model(trained.model, split[1], contract, seed=1, baseline=baseline)
    verdict = judge_candidate(evaluation, None, GatePolicy())
    assert verdict.passed, verdict.reasons
    assert evaluation.metrics["r2"] >= 0.9
    assert evaluation.metrics["mae"] < 0.5 * baseline["mae"]  # far better than the median
    assert {s.column for s in evaluation.slices} == {"age_years", "neighborhood"}


def test_bigger_house_is_not_cheaper(trained, split, contract: DataContract) -> None:
    sample = split[1][contract.feature_names].head(200).copy()
    before = trained.model.predict(sample)
    sample["size_sqft"] *= 1.3
    assert (trained.model.predict(sample) >= before - 1e-6).all()


def test_same_data_and_seed_give_the_same_model(split, contract: DataContract) -> None:
    first = train_model(split[0], contract, seed=5).model.predict(split[1][contract.feature_names])
    again = train_model(split[0], contract, seed=5).model.predict(split[1][contract.feature_names])
    np.testing.assert_array_equal(first, again)


class _ColumnModel:
    """A real linear model fitted on chosen columns, to build deliberately misbehaving models."""

    def __init__(self, frame: pd.DataFrame, columns: list[str], target: np.ndarray) -> None:
        self.columns = columns
        self.model = LinearRegression().fit(self._x(frame), target)

    def _x(self, frame: pd.DataFrame) -> np.ndarray:
        return pd.get_dummies(frame[self.columns], dtype=float).reindex(
            columns=self._names(frame), fill_value=0.0).to_numpy()  # fmt: skip

    def _names(self, frame: pd.DataFrame) -> list[str]:
        if not hasattr(self, "names"):
            self.names = list(pd.get_dummies(frame[self.columns], dtype=float).columns)
        return self.names

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict(self._x(frame))


def test_a_model_where_bigger_is_cheaper_is_refused(split, contract: DataContract) -> None:
    train, holdout = split
    inverted = train["price"].max() + 1000 - train["price"]  # price falls as size grows
    model = _ColumnModel(train, ["size_sqft"], inverted.to_numpy())
    evaluation = evaluate_model(model, holdout, contract, seed=1)
    assert checks(evaluation)["directional size_sqft"].failures > 0
    verdict = judge_candidate(evaluation, None, GatePolicy())
    assert "directional size_sqft" in {c.name for c in verdict.checks if not c.passed}


def test_a_model_that_prices_the_paint_is_refused(split, contract: DataContract) -> None:
    train, holdout = split
    painted = train["price"] * train["exterior_color"].map(
        {"white": 1.0, "grey": 1.5, "beige": 0.6, "blue": 1.4, "red": 0.7})  # fmt: skip
    model = _ColumnModel(train, ["size_sqft", "exterior_color"], painted.to_numpy())
    evaluation = evaluate_model(model, holdout, contract, seed=1)
    assert checks(evaluation)["invariance exterior_color"].worst > 0.05
    verdict = judge_candidate(evaluation, None, GatePolicy())
    assert "invariance exterior_color" in {c.name for c in verdict.checks if not c.passed}


def test_edge_cases_give_finite_positive_prices(trained, split, contract: DataContract) -> None:
    evaluation = evaluate_model(trained.model, split[1], contract, seed=1)
    edge = checks(evaluation)["edge-cases None"]
    assert edge.cases == 2 and edge.failures == 0
    assert edge.detail.endswith("finite positive prediction")  # prices are declared positive


def test_plain_rows_in_contract_order_predict_like_a_frame(trained, split, contract) -> None:
    """KServe's sklearn runtime hands the model lists, not named frames."""
    frame = split[1][contract.feature_names].head(20)
    np.testing.assert_allclose(trained.model.predict(frame.values.tolist()),
                               trained.model.predict(frame))  # fmt: skip
