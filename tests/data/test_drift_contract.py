"""The drift check counts values outside the data contract over every row, and drifts a column
once they pass their tolerated share; the counts reach the report JSON (20k-row batches)."""

import json

import numpy as np
import pandas as pd
import pytest

from tasks.data.synthetic import generate_house_prices
from tasks.decisions.drift import DriftPolicy
from tasks.drift.check import check_drift, report_json
from tasks.drift.markdown import drift_markdown
from tasks.drift.stats import column_drift

ROWS = 20_000
POLICY = DriftPolicy(evidently_sample_rows=5_000)
# A score threshold no column reaches: only the off-contract rule can drift a column.
DEAF = POLICY.model_copy(update={"numeric_threshold": 50.0, "categorical_threshold": 50.0,
                                 "unseen_share": 1.0})  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate_house_prices(ROWS, seed=1)


def with_values(rows: int, changes: list[tuple[str, object, int]], seed: int = 2) -> pd.DataFrame:
    """An unshifted batch with each (column, value, count) put into its own rows."""
    frame = generate_house_prices(rows, seed=seed)
    order, start = np.random.default_rng(seed).permutation(rows), 0
    for name, value, count in changes:
        frame.loc[order[start : start + count], name] = value
        start += count
    return frame


def by_name(columns):
    return {column.name: column for column in columns}


def test_unshifted_batch_has_nothing_outside_the_contract(reference, contract):
    columns = column_drift(reference, generate_house_prices(ROWS, seed=2), contract, POLICY)
    assert all(column.off_contract.count == 0 for column in columns)
    assert all(by_name(columns)[name].off_contract.checked == ROWS for name in contract.all_names)


def test_every_value_outside_is_counted_on_its_side(reference, contract):
    current = with_values(ROWS, [("neighborhood", "lakeside", 300), ("neighborhood", "dock", 100),
                                 ("size_sqft", 99_000.0, 40), ("size_sqft", 10.0, 30),
                                 ("price", 1.0, 7)])  # fmt: skip
    downtown = current.index[current["neighborhood"] == "downtown"][:10]
    current.loc[downtown, "neighborhood"] = None  # nulls are not values outside the contract
    columns = by_name(column_drift(reference, current, contract, POLICY))
    area, size, price = columns["neighborhood"], columns["size_sqft"], columns["price"]
    assert (area.off_contract.checked, area.off_contract.unknown_categories) == (ROWS - 10, 400)
    assert area.off_contract.examples == ["'lakeside'", "'dock'"]  # commonest first
    assert (size.off_contract.below_min, size.off_contract.above_max) == (30, 40)
    assert size.off_contract.examples == ["10", "99000"]
    assert price.off_contract.below_min == 7  # labels are held to the target's range
    assert columns["bedrooms"].off_contract.count == 0


def test_unknown_categories_drift_past_the_contracts_own_tolerance(reference, contract):
    current = with_values(ROWS, [("exterior_color", "green", 500)])  # 2.5%
    assert by_name(column_drift(reference, current, contract, DEAF))["exterior_color"].drifted
    lenient = contract.model_copy(
        update={"rules": contract.rules.model_copy(update={"max_unknown_category_share": 0.03})}
    )
    color = by_name(column_drift(reference, current, lenient, DEAF))["exterior_color"]
    assert (color.drifted, color.off_contract.unknown_categories) == (False, 500)


def test_numbers_out_of_range_drift_past_the_policy_tolerance(reference, contract):
    current = with_values(ROWS, [("distance_to_center_km", 250.0, 300)])  # 1.5%
    name = "distance_to_center_km"
    assert by_name(column_drift(reference, current, contract, DEAF))[name].drifted
    lenient = DEAF.model_copy(update={"max_out_of_range_share": 0.02})
    distance = by_name(column_drift(reference, current, contract, lenient))[name]
    assert (distance.drifted, distance.off_contract.above_max) == (False, 300)


def test_a_column_too_short_to_judge_still_reports_its_counts(reference, contract):
    current = generate_house_prices(500, seed=2)
    current.loc[:39, "condition"] = 9  # above max 5
    current.loc[60:, "condition"] = np.nan  # 60 values left: fewer than min_rows
    condition = by_name(column_drift(reference, current, contract, POLICY))["condition"]
    assert condition.status == "insufficient" and not condition.drifted
    assert (condition.off_contract.checked, condition.off_contract.above_max) == (60, 40)


def test_counts_reach_the_report_json_and_the_sample_verdict(reference, contract):
    current = with_values(ROWS, [("neighborhood", "lakeside", 600), ("size_sqft", 20_000.0, 400),
                                 ("distance_to_center_km", 150.0, 400)])  # fmt: skip
    report = check_drift(reference, current, contract, POLICY)
    assert report.verdict.status == "drift"
    assert {"neighborhood", "size_sqft", "distance_to_center_km"} <= set(
        report.verdict.drifted_columns
    )
    assert report.report_agrees  # Evidently's columns get the same (exact) counts
    stored = json.loads(report_json(report.snapshot))
    assert stored["metrics"]
    assert stored["drift_check"]["verdict"] == report.verdict.model_dump(mode="json")
    size = next(c for c in stored["drift_check"]["columns"] if c["name"] == "size_sqft")
    assert (size["off_contract"]["above_max"], size["off_contract"]["share"]) == (400, 0.02)
    text = drift_markdown(report.verdict, list(report.columns))
    assert "- `size_sqft`: 400 of 20000 values outside the contract (400 above max; " in text
