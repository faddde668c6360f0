"""The data contract on good and bad batches: every violation named, counted and exemplified."""

import numpy as np
import pandas as pd
import pytest

from tasks.data.contract import DataContract
from tasks.data.synthetic import CorruptionSpec, DriftSpec, generate_house_prices
from tasks.data.validation import DataValidationError, validate_frame


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return generate_house_prices(600, seed=3)


def rules(report) -> dict[tuple[str | None, str], int]:
    return {(v.column, v.rule): v.count for v in report.violations}


def test_generated_data_passes(good: pd.DataFrame, contract: DataContract) -> None:
    report = validate_frame(good, contract)
    assert report.passed, report.summary()
    assert report.rows == 600


def test_every_violation_is_reported_at_once(good: pd.DataFrame, contract: DataContract) -> None:
    bad = good.copy()
    bad.loc[:4, "size_sqft"] = -100.0
    bad.loc[10:12, "bathrooms"] = np.nan
    bad["bedrooms"] = bad["bedrooms"].astype(object)
    bad.loc[20, "bedrooms"] = "three"
    bad.loc[30:31, "price"] = 9e9
    bad = bad.rename(columns={"age_years": "age"})
    found = rules(validate_frame(bad, contract))
    assert found == {
        ("size_sqft", "outside the range (250.0, 15000.0)"): 5,
        ("bathrooms", "null values"): 3,
        ("bedrooms", "not a number (int)"): 1,
        ("price", "outside the range (20000.0, 5000000.0)"): 2,
        ("age_years", "missing column"): 1,
        ("age", "column not in contract"): 1,
    }


def test_examples_name_the_bad_values(good: pd.DataFrame, contract: DataContract) -> None:
    bad = good.copy()
    bad.loc[0, "condition"] = 9
    report = validate_frame(bad, contract)
    (violation,) = report.violations
    assert violation.column == "condition" and violation.examples == ["9.0"]
    with pytest.raises(DataValidationError, match=r"column 'condition': outside the range"):
        raise DataValidationError(report)


def test_infinity_and_fractional_counts(good: pd.DataFrame, contract: DataContract) -> None:
    bad = good.copy()
    bad.loc[0, "lot_size_sqft"] = np.inf
    bad["bedrooms"] = bad["bedrooms"].astype(float)
    bad.loc[1, "bedrooms"] = 2.5
    found = rules(validate_frame(bad, contract))
    assert found[("lot_size_sqft", "finite")] == 1
    assert found[("bedrooms", "whole number")] == 1


def test_unknown_categories_tolerated_up_to_the_share(contract: DataContract) -> None:
    few = generate_house_prices(2000, seed=4, drift=DriftSpec(new_category_share=0.005))
    report = validate_frame(few, contract)
    assert report.passed and report.warnings[0].examples == ["'lakeside'"]
    many = generate_house_prices(2000, seed=4, drift=DriftSpec(new_category_share=0.10))
    (violation,) = validate_frame(many, contract).violations
    assert violation.column == "neighborhood" and violation.rule.startswith("unknown categories")


def test_duplicates_and_row_count(good: pd.DataFrame, contract: DataContract) -> None:
    duplicated = pd.concat([good, good.head(60)], ignore_index=True)
    assert any(
        v.rule.startswith("duplicated rows")
        for v in validate_frame(duplicated, contract).violations
    )
    tiny = good.head(10)
    assert [v.rule for v in validate_frame(tiny, contract).violations] == ["too few rows: 10 < 50"]


def test_identical_rows_at_scale_are_caught(good: pd.DataFrame, contract: DataContract) -> None:
    same = good.iloc[[0] * 200_000].reset_index(drop=True)
    (violation,) = validate_frame(same, contract).violations
    assert violation.count == 199_999


def test_nulls_from_corruption_counted_per_column(contract: DataContract) -> None:
    frame = generate_house_prices(1000, seed=5, corruption=CorruptionSpec(null_share=0.02))
    counted = {v.column: v.count for v in validate_frame(frame, contract).violations}
    assert counted == {column: int(frame[column].isna().sum()) for column in frame.columns}


def test_any_regression_data_set_with_its_own_contract() -> None:
    """Nothing assumes house columns: an energy-use data set validates against its own contract."""
    contract = DataContract.model_validate({
        "name": "energy",
        "target": {"name": "kwh", "dtype": "float", "min": 0},
        "columns": [
            {"name": "temperature_c", "dtype": "float", "min": -40, "max": 50},
            {"name": "site", "dtype": "category", "categories": ["north", "south"]},
        ],
        "rules": {"min_rows": 10},
    })  # fmt: skip
    temperatures = np.linspace(-10, 60, 20)
    frame = pd.DataFrame({"temperature_c": temperatures, "site": ["north", "south"] * 10,
                          "kwh": np.arange(20.0)})  # fmt: skip
    assert validate_frame(frame[frame.temperature_c <= 50], contract).passed
    assert rules(validate_frame(frame, contract)) == {
        ("temperature_c", "outside the range (-40.0, 50.0)"): int((temperatures > 50).sum()),
    }


def test_a_classifier_s_labels_outside_its_classes_are_refused_even_one() -> None:
    """Unknown feature categories are tolerated up to a share; an unknown label never is (the
    model would learn a class the server does not have). 1.0 and "1" are the class "1"."""
    from sklearn.datasets import load_wine

    from tasks.data.inference import infer_config

    frame = load_wine(as_frame=True).frame
    contract = infer_config(frame, "target", "wine")[0].contract
    assert validate_frame(frame.assign(target=frame["target"].astype(float)), contract).passed
    stray = frame.assign(target=frame["target"].astype(object))
    stray.loc[stray.index[:1], "target"] = "7"
    (violation,) = validate_frame(stray, contract).violations
    assert violation.rule == "labels outside the classes ['0', '1', '2']"
    assert (violation.column, violation.count, violation.examples) == ("target", 1, ["'7'"])
