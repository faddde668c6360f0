"""The optional time-boxed search (tasks/training/search.py) on real models: it picks values from
its space and records what it did, is the same for the same data and seed, ends when its budget
says (still handing back a usable model), searches regressors — a log target too — and binary and
multiclass classifiers, refuses nonsense configuration, and is reached from a model's
configuration file through the settings. Off by default: nothing changes for a model without it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from tasks.data.contract import DataContract
from tasks.data.inference import infer_config
from tasks.data.model_config import ModelConfig, config_yaml, load_model_config
from tasks.data.synthetic import generate_house_prices
from tasks.settings import get_settings
from tasks.training.model import TrainedModel, train_model
from tasks.training.policy import SearchPolicy, TrainingPolicy

SEED = 3
QUICK = {"max_iter": 60}  # the final model's size: the search is what these tests are about


def contract_of(frame: pd.DataFrame, name: str) -> DataContract:
    return infer_config(frame, "target", name)[0].contract


def labelled(loader) -> pd.DataFrame:
    """The data set with its target as text labels, so it is a class."""
    data = loader(as_frame=True)
    frame = data.frame.copy()
    frame["target"] = frame["target"].map(dict(enumerate(data.target_names))).astype(str)
    return frame


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, DataContract]:
    frame = load_diabetes(as_frame=True).frame
    return frame, contract_of(frame, "diabetes")


def searched(frame, contract, seed: int = SEED, **search) -> TrainedModel:
    policy = TrainingPolicy(**QUICK, search={"enabled": True, "candidates": 6, **search})
    return train_model(frame, contract, seed, policy.params())


def assert_chosen_from_the_space(params: dict, space: SearchPolicy) -> None:
    for name, (low, high) in space.space().items():
        assert low <= params[name] <= high, (name, params[name])
    assert isinstance(params["max_leaf_nodes"], int)


def test_the_search_chooses_from_its_space_and_records_what_it_did(diabetes) -> None:
    frame, contract = diabetes
    trained = searched(frame, contract, budget_s=120)
    summary = trained.params["search"]
    assert_chosen_from_the_space(trained.params, SearchPolicy())
    assert (trained.params["learning_rate"], trained.params["max_leaf_nodes"]) != (0.08, 31)
    assert trained.params["max_iter"] == 60  # not searched: the policy's own
    assert not summary["cut_short"] and summary["fallback"] == "" and summary["skipped_fits"] == 0
    assert summary["candidates"] == 6 and summary["rounds"] == len(summary["rows_per_round"]) == 2
    assert summary["rows_per_round"][-1] > 0.9 * len(frame)  # the last round uses every row
    assert summary["chosen_round"] == 2 and summary["scoring"] == "neg_mean_absolute_error"
    assert summary["best_score"] < 0 and summary["scored"] == 6 + 2
    booster = trained.model.named_steps["regressor"]
    assert booster.learning_rate == trained.params["learning_rate"]  # trained with the choice
    assert np.isfinite(trained.model.predict(frame[contract.feature_names])).all()


def test_same_data_and_seed_same_choice_another_seed_another(diabetes) -> None:
    frame, contract = diabetes

    def choice(seed: int) -> tuple:
        params = searched(frame, contract, seed, budget_s=120).params
        return tuple(params[name] for name in SearchPolicy().space())

    assert choice(SEED) == choice(SEED)
    assert choice(SEED) != choice(SEED + 1)


def test_a_tiny_budget_cuts_the_search_short_and_says_so() -> None:
    frame = generate_house_prices(3000, seed=5)
    contract = infer_config(frame, "price", "houses")[0].contract
    policy = TrainingPolicy(**QUICK, search={"enabled": True, "budget_s": 0.5, "candidates": 27})
    started = time.perf_counter()
    trained = train_model(frame, contract, SEED, policy.params())
    assert time.perf_counter() - started < 10  # unbounded: 27 candidates x 3 folds, 4 rounds
    summary = trained.params["search"]
    assert summary["cut_short"] and summary["skipped_fits"] > 0
    assert summary["elapsed_s"] < 3
    assert summary["chosen_round"] is None or summary["chosen_round"] < summary["rounds"]
    assert np.isfinite(trained.model.predict(frame[contract.feature_names])).all()


def test_when_no_candidate_finishes_the_policy_values_are_kept_and_the_reason_given(
    diabetes,
) -> None:
    frame, contract = diabetes
    trained = searched(frame, contract, budget_s=1e-9)
    summary = trained.params["search"]
    assert summary["fallback"] == "no candidate finished every fold within the budget"
    assert summary["chosen_round"] is None and summary["best_score"] is None
    assert summary["scored"] == 0 and summary["cut_short"]
    policy = TrainingPolicy()
    assert [trained.params[k] for k in ("learning_rate", "max_leaf_nodes", "l2_regularization")] == [
        policy.learning_rate, policy.max_leaf_nodes, policy.l2_regularization
    ]  # fmt: skip
    assert np.isfinite(trained.model.predict(frame[contract.feature_names])).all()


def test_a_log_target_is_searched_through_its_transform(diabetes) -> None:
    frame, contract = diabetes
    trained = searched(frame, contract, budget_s=120, candidates=3)
    logged = train_model(
        frame,
        contract,
        SEED,
        {**QUICK, "target_transform": "log", "search": {"enabled": True, "candidates": 3}},
    )
    assert type(logged.model).__name__ == "TransformedTargetRegressor"
    assert_chosen_from_the_space(logged.params, SearchPolicy())
    assert logged.params["search"]["chosen_round"] is not None
    # scored on the target as given, not its log: MAE of the same order as the plain search's
    ratio = logged.params["search"]["best_score"] / trained.params["search"]["best_score"]
    assert 0.7 < ratio < 1.4


@pytest.mark.parametrize(
    ("loader", "classes"), [(load_breast_cancer, 2), (load_wine, 3)], ids=["binary", "multiclass"]
)
def test_classifiers_are_searched_uncalibrated_then_trained_as_always(loader, classes) -> None:
    frame = labelled(loader)
    contract = contract_of(frame, loader.__name__)
    trained = searched(frame, contract, budget_s=120)
    summary = trained.params["search"]
    assert summary["scoring"] == "neg_log_loss" and summary["fallback"] == ""
    assert summary["chosen_round"] == summary["rounds"] and not summary["cut_short"]
    assert_chosen_from_the_space(trained.params, SearchPolicy())
    assert "calibration" in trained.params  # the final model's calibration is decided as always
    proba = trained.model.predict_proba(frame[contract.feature_names])
    assert proba.shape == (len(frame), classes)
    assert np.allclose(proba.sum(axis=1), 1)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"budget_s": 0}, "search.budget_s"),
        ({"budget_s": -5}, "greater than 0"),
        ({"budget_s": float("nan")}, "search.budget_s"),
        ({"budgit_s": 5}, "Extra inputs are not permitted"),
        ({"learning_rate": (0.3, 0.01)}, "search.learning_rate (0.3, 0.01) must be (low, high)"),
        ({"max_leaf_nodes": (1, 8)}, "search.max_leaf_nodes.0"),
        ({"candidates": 1}, "search.candidates"),
    ],
)
def test_nonsense_search_configuration_is_refused_by_name(search, message) -> None:
    with pytest.raises(ValidationError) as refused:
        TrainingPolicy(search=search)
    assert message in str(refused.value)


def test_the_search_is_off_by_default_and_then_leaves_the_params_as_they_were(diabetes) -> None:
    assert "search" not in TrainingPolicy().params()
    frame, contract = diabetes
    trained = train_model(frame, contract, SEED, TrainingPolicy(**QUICK).params())
    assert "search" not in trained.params and trained.params["learning_rate"] == 0.08


def write_config(path: Path, contract: DataContract, training: dict) -> Path:
    path.write_text(config_yaml(ModelConfig(contract=contract, training=training), [], "test"))
    return path


def test_a_model_configuration_turns_the_search_on_for_training(diabetes, tmp_path) -> None:
    frame, contract = diabetes
    training = {"max_iter": 60, "search": {"enabled": True, "budget_s": 30, "candidates": 3}}
    config = load_model_config(write_config(tmp_path / "diabetes.yaml", contract, training))
    settings = get_settings(config={"training": config.training})
    assert settings.training.search == SearchPolicy(enabled=True, budget_s=30, candidates=3)
    trained = train_model(frame, contract, settings.seed, settings.training.params())
    assert trained.params["search"]["budget_s"] == 30
    assert trained.params["search"]["candidates"] == 3


@pytest.mark.parametrize(
    ("search", "message"),
    [({"enabled": True, "budget_s": 0}, "training.search.budget_s"),
     ({"enabld": True}, "training.search.enabld")],
)  # fmt: skip
def test_a_model_configuration_with_a_bad_search_is_refused(
    diabetes, tmp_path, search, message
) -> None:
    _, contract = diabetes
    config = load_model_config(write_config(tmp_path / "bad.yaml", contract, {"search": search}))
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        get_settings(config={"training": config.training})
