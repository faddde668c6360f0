"""The drift check on real synthetic batches: exact statistics, bad inputs, Evidently's report,
and agreement with a plain Evidently DataDriftPreset run on the full data (20k rows)."""

import json

import numpy as np
import pandas as pd
import pytest

from tasks.data.synthetic import DriftSpec, generate_house_prices
from tasks.decisions.drift import DriftPolicy, judge_drift
from tasks.drift.check import (
    check_drift,
    columns_from_snapshot,
    evidently_report,
    report_html,
    report_json,
)
from tasks.drift.stats import DriftInputError, column_drift

ROWS = 20_000
POLICY = DriftPolicy(categorical_threshold=0.2, evidently_sample_rows=5_000)
CASES = {
    "no drift": DriftSpec(),
    "shifted numeric": DriftSpec(size_shift=0.3, age_shift_years=10),
    "new categories": DriftSpec(new_category_share=0.1),
    "price level": DriftSpec(price_level=1.25),
}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate_house_prices(ROWS, seed=1)


def batch(spec: DriftSpec, rows: int = ROWS) -> pd.DataFrame:
    return generate_house_prices(rows, seed=2, drift=spec)


def by_name(columns):
    return {column.name: column for column in columns}


def test_same_distribution_other_seed_is_no_drift(reference, contract):
    columns = column_drift(reference, batch(CASES["no drift"]), contract, POLICY)
    verdict = judge_drift(columns, POLICY)
    assert (verdict.status, verdict.drifted_columns) == ("no_drift", [])
    assert max(column.score for column in columns) < 0.02


def test_shifted_numeric_columns_are_named(reference, contract):
    columns = column_drift(reference, batch(CASES["shifted numeric"]), contract, POLICY)
    verdict = judge_drift(columns, POLICY)
    assert verdict.status == "drift"
    assert {"size_sqft", "age_years", "lot_size_sqft"} <= set(verdict.drifted_columns)
    assert not {"distance_to_center_km", "exterior_color"} & set(verdict.drifted_columns)


def test_new_category_is_named_with_its_share(reference, contract):
    neighborhood = by_name(
        column_drift(reference, batch(CASES["new categories"]), contract, POLICY)
    )["neighborhood"]
    assert neighborhood.drifted
    assert list(neighborhood.unseen) == ["lakeside"]
    assert neighborhood.unseen_share == pytest.approx(0.1, abs=0.01)


def test_unseen_categories_alone_drift_the_column(reference, contract):
    # 1.5%: past unseen_share (1%), within the contract's 2% of unknown categories
    # (tests/data/test_drift_contract.py has that rule).
    current = batch(DriftSpec(new_category_share=0.015))
    deaf = POLICY.model_copy(update={"categorical_threshold": 50.0})  # the score cannot decide
    assert by_name(column_drift(reference, current, contract, deaf))["neighborhood"].drifted
    tolerant = deaf.model_copy(update={"unseen_share": 0.5})
    assert not by_name(column_drift(reference, current, contract, tolerant))["neighborhood"].drifted


def test_price_level_is_target_drift_and_unlabelled_batches_skip_it(reference, contract):
    current = batch(CASES["price level"])
    verdict = judge_drift(column_drift(reference, current, contract, POLICY), POLICY)
    assert (verdict.status, verdict.drifted_columns) == ("drift", ["price"])
    unlabelled = column_drift(reference, current.drop(columns="price"), contract, POLICY)
    assert by_name(unlabelled)["price"].status == "absent"
    assert judge_drift(unlabelled, POLICY).status == "no_drift"


def test_prediction_is_compared_when_both_sides_have_it(reference, contract):
    current = batch(CASES["no drift"]).assign(prediction=lambda f: f["price"] * 1.3)
    columns = by_name(column_drift(reference.assign(prediction=reference["price"]), current,
                                   contract, POLICY))  # fmt: skip
    assert columns["prediction"].drifted and columns["prediction"].role == "prediction"
    only_current = by_name(column_drift(reference, current, contract, POLICY))["prediction"]
    assert (only_current.status, only_current.note) == ("absent", "not in reference data")


@pytest.mark.parametrize(
    "current",
    [pd.DataFrame(), pd.DataFrame(columns=["size_sqft", "neighborhood"]), "one row"],
    ids=["empty, no columns", "empty with columns", "single row"],
)
def test_too_little_current_data_is_insufficient_never_drift(reference, contract, current):
    current = batch(CASES["shifted numeric"], rows=1) if isinstance(current, str) else current
    report = check_drift(reference, current, contract, POLICY)
    assert (report.verdict.status, report.verdict.drifted) == ("insufficient_data", False)
    assert report.snapshot is None
    assert "insufficient data" in report.verdict.reasons[0]
    assert {column.status for column in report.columns if column.role == "feature"} == {
        "insufficient"
    }
    assert (
        f"current has {len(current)} non-null values" in by_name(report.columns)["size_sqft"].note
    )


def test_all_nan_column_is_not_judged_and_left_out_of_the_report(reference, contract):
    current = batch(CASES["no drift"])
    current["size_sqft"] = np.nan
    current["neighborhood"] = None
    report = check_drift(reference, current, contract, POLICY)
    columns = by_name(report.columns)
    assert columns["size_sqft"].status == columns["neighborhood"].status == "insufficient"
    assert report.verdict.status == "no_drift" and report.verdict.judged_features == 7
    reported = {column.name for column in columns_from_snapshot(report.snapshot, contract, POLICY)}
    assert "size_sqft" not in reported and "bedrooms" in reported


def test_mostly_nan_batch_is_insufficient_data(reference, contract):
    current = batch(CASES["shifted numeric"])
    for name in contract.feature_names[:6]:
        current[name] = np.nan
    assert judge_drift(column_drift(reference, current, contract, POLICY), POLICY).status == (
        "insufficient_data"
    )


def test_bad_inputs_raise_named_errors(reference, contract):
    current = batch(CASES["no drift"], rows=500)
    with pytest.raises(DriftInputError, match=r"current data lacks feature columns \['bedrooms'\]"):
        column_drift(reference, current.drop(columns="bedrooms"), contract, POLICY)
    with pytest.raises(DriftInputError, match="reference data has 0 rows"):
        check_drift(reference.iloc[:0], current, contract, POLICY)
    with pytest.raises(DriftInputError, match="reference data has 1 rows"):
        column_drift(reference.iloc[:1], current, contract, POLICY)
    with pytest.raises(DriftInputError, match="'age_years' in current data is not numeric"):
        column_drift(reference, current.assign(age_years="old"), contract, POLICY)
    assert issubclass(DriftInputError, ValueError)


@pytest.fixture(scope="module")
def plain_evidently(reference, contract):
    """Plain Evidently on the full 20k rows per case: DataDriftPreset, same method and thresholds."""
    full = POLICY.model_copy(update={"evidently_sample_rows": ROWS})
    return {
        name: columns_from_snapshot(
            evidently_report(reference, batch(spec), contract, full), contract, POLICY
        )
        for name, spec in CASES.items()
    }


@pytest.mark.parametrize("case", list(CASES))
def test_verdict_agrees_with_plain_evidently(reference, contract, plain_evidently, case):
    report = check_drift(reference, batch(CASES[case]), contract, POLICY)  # report on 5k sample
    theirs = plain_evidently[case]
    assert judge_drift(theirs, POLICY).status == report.verdict.status
    assert {c.name: c.drifted for c in theirs} == {c.name: c.drifted for c in report.columns}
    assert report.report_agrees


def test_report_names_the_method_and_thresholds_and_renders(reference, contract):
    report = check_drift(reference, batch(CASES["new categories"]), contract, POLICY)
    metrics = json.loads(report_json(report.snapshot))["metrics"]
    drifts = {m["config"]["column"]: m["config"] for m in metrics if "column" in m["config"]}
    assert drifts["neighborhood"]["method"] == drifts["size_sqft"]["method"] == "psi"
    assert (drifts["neighborhood"]["threshold"], drifts["size_sqft"]["threshold"]) == (0.2, 0.1)
    assert set(drifts) == {*contract.feature_names, "price"}
    html = report_html(report.snapshot)
    assert html.lstrip().lower().startswith(b"<!doctype html>") and b"neighborhood" in html
