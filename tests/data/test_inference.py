"""Inferring a contract from data: it validates the data it came from, and each stated rule holds
(types, ranges and margins, categories, nulls, the task and the target's sign)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from tasks.data.contract import load_contract
from tasks.data.inference import InferenceError, default_name, infer_config
from tasks.data.loading import load_csv
from tasks.data.synthetic import generate_house_prices
from tasks.data.validation import validate_frame
from tasks.settings import DEFAULT_CONTRACT

DATA_SETS: dict[str, tuple[Callable[[], pd.DataFrame], str, str, tuple[str, ...] | None]] = {
    "diabetes": (lambda: load_diabetes(as_frame=True).frame, "target", "regression", None),
    "breast-cancer": (
        lambda: load_breast_cancer(as_frame=True).frame,
        "target",
        "classification",
        ("0", "1"),
    ),
    "wine": (lambda: load_wine(as_frame=True).frame, "target", "classification", ("0", "1", "2")),
    "house-prices": (lambda: generate_house_prices(3000, seed=1), "price", "regression", None),
}


@pytest.mark.parametrize("data_set", DATA_SETS)
def test_the_inferred_contract_validates_the_data_it_came_from(data_set: str) -> None:
    load, target, task, classes = DATA_SETS[data_set]
    frame = load()
    config, decisions = infer_config(frame, target, data_set)
    report = validate_frame(frame, config.contract)
    assert report.passed, report.summary()
    assert report.warnings == []
    assert (config.contract.task, config.contract.classes) == (task, classes)
    assert config.contract.all_names == [*(c for c in frame.columns if c != target), target]
    # One decision per column, the target's included, and one for the data-set rules.
    assert len(decisions) == len(frame.columns) + 1
    assert decisions[-2].startswith(f"target {target}: {task}")


def test_house_prices_get_the_types_a_person_gave_them() -> None:
    config, _ = infer_config(generate_house_prices(3000, seed=1), "price", "house-prices")
    by_hand = load_contract(DEFAULT_CONTRACT)
    inferred = {
        spec.name: spec.dtype for spec in (*config.contract.columns, config.contract.target)
    }
    assert inferred == {spec.name: spec.dtype for spec in (*by_hand.columns, by_hand.target)}
    assert config.target_strictly_positive
    neighborhood = config.contract.column("neighborhood")
    assert neighborhood.categories == ("downtown", "hillside", "industrial", "riverside", "suburbs")


def test_the_margin_lets_a_new_batch_from_the_same_source_pass() -> None:
    first, second = generate_house_prices(2000, seed=1), generate_house_prices(2000, seed=2)
    config, _ = infer_config(first, "price", "house-prices")
    numeric = first.select_dtypes("number").columns
    beyond = (second[numeric] < first[numeric].min()) | (second[numeric] > first[numeric].max())
    assert beyond.any(axis=None), "the exact observed ranges would refuse this batch"
    assert validate_frame(second, config.contract).passed


def mixed_frame(rows: int = 80) -> pd.DataFrame:
    """Strings, ints (a dense count, sparse codes, one with gaps), booleans, a negative float."""
    rng = np.random.default_rng(7)
    floors = pd.array(rng.integers(0, 9, rows), dtype="Int64")
    floors[::10] = pd.NA
    frame = pd.DataFrame(
        {
            "city": rng.choice(["oslo", "lima", "pune"], rows),
            "rooms": rng.integers(1, 7, rows),
            "zone": rng.choice([101, 205, 310], rows),
            "floor": floors,
            "temperature_c": rng.normal(-5, 8, rows),
            "share": np.linspace(0, 100, rows),
            "garden": rng.choice([True, False], rows),
            "y": rng.gamma(2.0, 3.0, rows) + 0.5,
        }
    )
    frame.loc[3, "city"] = None
    return frame


def test_types_categories_and_nulls_on_a_mixed_frame() -> None:
    frame = mixed_frame()
    config, decisions = infer_config(frame, "y", "mixed")
    spec = config.contract.column
    assert [(c.name, c.dtype) for c in config.contract.columns] == [
        ("city", "category"),
        ("rooms", "int"),  # 1..6, every value present: a count
        ("zone", "category"),  # three integers spread over 210: codes
        ("floor", "int"),
        ("temperature_c", "float"),
        ("share", "float"),
        ("garden", "category"),
    ]
    assert spec("city").categories == ("lima", "oslo", "pune") and spec("city").nullable
    assert spec("zone").categories == ("101", "205", "310") and not spec("zone").nullable
    assert spec("garden").categories == ("False", "True")
    assert spec("floor").nullable and not spec("rooms").nullable
    assert "codes" in decisions[2] and "nullable (8 missing, 10.0%)" in decisions[3]
    assert validate_frame(frame, config.contract).passed


def test_ranges_widen_by_a_tenth_of_the_span_and_keep_the_sign() -> None:
    frame = mixed_frame()
    config, _ = infer_config(frame, "y", "mixed")
    spec = config.contract.column
    temperature = frame["temperature_c"]
    margin = 0.1 * (temperature.max() - temperature.min())
    # Negative values: widened below, not clipped; rounding outward adds at most one more margin.
    assert temperature.min() - 2 * margin <= spec("temperature_c").min <= temperature.min() - margin
    assert temperature.max() + margin <= spec("temperature_c").max <= temperature.max() + 2 * margin
    assert (spec("share").min, spec("share").max) == (0, 110)  # never negative: clipped at 0
    assert (spec("rooms").min, spec("rooms").max) == (1, 7)  # strictly positive int: floor 1
    assert (spec("floor").min, spec("floor").max) == (0, 9)


def test_a_csv_round_trip_keeps_an_int_column_with_gaps_an_int(tmp_path) -> None:
    path = tmp_path / "mixed.csv"
    mixed_frame().to_csv(path, index=False)
    frame = load_csv(path)
    assert frame["floor"].dtype == float  # what pandas makes of an int column with gaps
    config, decisions = infer_config(frame, "y", "mixed")
    assert config.contract.column("floor").dtype == "int"
    assert "whole numbers with gaps" in decisions[3]
    assert validate_frame(frame, config.contract).passed


@pytest.mark.parametrize(
    ("target", "positive", "minimum"),
    [
        (np.linspace(-3.0, 4.0, 60), False, -3.7),  # crosses zero: widened below, not clipped
        (np.linspace(0.0, 4.0, 60), False, 0.0),  # reaches zero
        (np.linspace(0.3, 100.0, 60), True, 0.1),  # half the minimum, one significant digit
    ],
)
def test_the_target_sign_decides_whether_percentage_errors_are_defined(
    target: np.ndarray, positive: bool, minimum: float
) -> None:
    frame = pd.DataFrame({"x": np.arange(60.0), "y": target})
    config, decisions = infer_config(frame, "y", "signs")
    assert config.contract.task == "regression"
    assert config.target_strictly_positive is positive
    assert config.contract.target.min == pytest.approx(minimum)
    assert ("not strictly positive" in decisions[-2]) is not positive
    assert validate_frame(frame, config.contract).passed


def test_text_targets_are_classes_and_many_whole_values_are_regression() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=200), "label": rng.choice(["no", "yes"], 200)})
    config, _ = infer_config(frame, "label", "churn")
    assert config.contract.classes == ("no", "yes")
    frame["count"] = rng.integers(0, 500, 200)
    config, _ = infer_config(frame.drop(columns="label"), "count", "counts")
    assert (config.contract.task, config.contract.target.dtype) == ("regression", "int")


@pytest.mark.parametrize(
    ("frame", "target", "message"),
    [
        (pd.DataFrame({"price": [1.0], "x": [2.0]}), "prise", r"'prise' is not .* 'price'\?"),
        (pd.DataFrame({"price": [], "x": []}), "price", "no rows"),
        (pd.DataFrame({"price": [1.0, 2.0]}), "price", "no features"),
        (pd.DataFrame({"y": [1.0, 1.0], "x": [2.0, 3.0]}), "y", "one value"),
        (pd.DataFrame({"y": [1.0, 2.0], "x": [2.0, np.inf]}), "y", "'x' has 1 infinite"),
        (
            pd.DataFrame({"y": [1.0, 2.0], "at": pd.to_datetime(["2024-01-01", "2024-01-02"])}),
            "y",
            "'at' holds dates",
        ),
        (
            pd.DataFrame({"y": np.arange(1200.0), "id": [f"c{i}" for i in range(1200)]}),
            "y",
            "'id' has 1200 distinct values",
        ),
    ],
)
def test_data_no_contract_can_describe_is_refused_with_the_reason(
    frame: pd.DataFrame, target: str, message: str
) -> None:
    with pytest.raises(InferenceError, match=message):
        infer_config(frame, target, "refused")


def test_the_default_name_comes_from_the_file_name() -> None:
    assert default_name("data/House Prices_2024.csv") == "house-prices-2024"
