"""A first data contract inferred from a sample of the data: the rules `mlops init` applies.

pandera (a dependency already, for validation) has `infer_schema`, and it is not used here: it
records the sample's exact min and max (so the next batch's largest house fails), says nothing
about text columns (no categories), keeps pandas dtypes instead of our three types and knows no
target or task. What it would compute — min, max, any nulls — is a few pandas calls; the choices
that matter are ours either way, so they are written here, explicit and tested:

- type: text, booleans and pandas categoricals are `category`. An integer column is `int`, unless
  it has at most 20 distinct values that fill less than half of its min..max run (10/20/30,
  101/205/310): then it is codes, a `category`. A float column with gaps whose values are all
  whole is `int` (pandas stores an int column with gaps as float); other floats are `float`.
- range: the observed min..max widened by 10% of the observed span on each side, rounded outward
  to the margin's leading digit. A column never negative is clipped at 0; a strictly positive one
  keeps a floor above 0 (1 for ints, else half its minimum, to one significant digit).
- categories: the observed values, as text (as validation compares them); nullable: any nulls.
- task: a text, boolean or categorical target, or a whole-valued one with at most 20 distinct
  values, is classification with the observed classes; any other numeric target is regression.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types

from tasks.data.contract import ColumnSpec, ContractRules, DataContract
from tasks.data.model_config import ModelConfig

MARGIN = 0.10  # share of the observed span added on each side of a numeric range
MAX_CODE_VALUES = 20  # an int column with more distinct values is a quantity, never codes
MAX_CLASSES = 20  # a whole-valued target with more distinct values is regression
MAX_CATEGORIES = 1000  # a text column with more distinct values is an identifier or free text


class InferenceError(ValueError):
    """The data cannot be described by a contract as it stands; the message says why."""


def default_name(path: str | Path) -> str:
    """A model name from a file name: `House Prices.csv` -> `house-prices`."""
    return re.sub(r"[^a-z0-9]+", "-", Path(path).stem.lower()).strip("-") or "model"


def infer_config(
    frame: pd.DataFrame, target: str, name: str, description: str = ""
) -> tuple[ModelConfig, list[str]]:
    """A model configuration for this data, and one sentence per decision saying what and why."""
    _check_shape(frame, target)
    columns, decisions = [], []
    for column in frame.columns:
        if column != target:
            spec, decision = _infer_feature(frame[column])
            columns.append(spec)
            decisions.append(decision)
    spec, task, decision = _infer_target(frame[target])
    rules, rules_decision = _infer_rules(frame)
    contract = DataContract(
        name=name,
        description=description,
        task=task,
        target=spec,
        columns=tuple(columns),
        rules=rules,
    )
    return ModelConfig(contract=contract), [*decisions, decision, rules_decision]


def _check_shape(frame: pd.DataFrame, target: str) -> None:
    names = [str(column) for column in frame.columns]
    if target not in frame.columns:
        close = difflib.get_close_matches(target, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InferenceError(f"target column {target!r} is not in the data{hint} Columns: {names}")
    if frame.empty:
        raise InferenceError("the data has no rows")
    if len(frame.columns) < 2:
        raise InferenceError(f"the data has only the target column {target!r}, no features")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InferenceError(f"duplicated column names {duplicated}")


def _infer_feature(series: pd.Series) -> tuple[ColumnSpec, str]:
    name, values = str(series.name), series.dropna()
    missing = _missing(series)
    if values.empty:
        spec = ColumnSpec(name=name, dtype="float", nullable=True)
        return spec, f"{name}: float, no range: every value is missing — consider dropping it"
    _refuse_infinite(values, f"column {name!r}")
    dtype, why = _column_type(series, values)
    if dtype == "category":
        categories = _categories(values, name)
        spec = ColumnSpec(name=name, dtype=dtype, nullable=missing > 0, categories=categories)
        shown = ", ".join(categories[:8]) + (", …" if len(categories) > 8 else "")
        text = f"{name}: category ({why}), {len(categories)} values [{shown}]"
        return spec, f"{text}{_missing_note(missing, len(series))}"
    low, high, note = _range(float(values.min()), float(values.max()), whole=dtype == "int")
    spec = ColumnSpec(name=name, dtype=dtype, min=low, max=high, nullable=missing > 0)
    text = f"{name}: {dtype}{f' ({why})' if why else ''}, range {_fmt(low)}–{_fmt(high)} ({note})"
    return spec, f"{text}{_missing_note(missing, len(series))}"


def _column_type(series: pd.Series, values: pd.Series) -> tuple[str, str]:
    """The contract type of a column and, when not the obvious one, why."""
    dtype = series.dtype
    if types.is_bool_dtype(dtype):
        return "category", "true/false"
    if types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        raise InferenceError(
            f"column {series.name!r} holds dates or durations, which a contract cannot describe;"
            " convert it to a number (e.g. age in days) or drop it"
        )
    if types.is_complex_dtype(dtype):
        raise InferenceError(f"column {series.name!r} holds complex numbers")
    if not types.is_numeric_dtype(dtype):
        return "category", "text" if not isinstance(dtype, pd.CategoricalDtype) else "categorical"
    if types.is_integer_dtype(dtype):
        distinct = values.nunique()
        run = float(values.max()) - float(values.min()) + 1
        if distinct <= MAX_CODE_VALUES and distinct < run / 2:
            return "category", f"codes: {distinct} integers spread over {run:.0f}"
        return "int", ""
    if len(values) < len(series) and bool((values == values.round()).all()):
        return "int", "whole numbers with gaps, stored as float"
    return "float", ""


def _categories(values: pd.Series, name: str) -> tuple[str, ...]:
    distinct = pd.unique(values)
    if len(distinct) > MAX_CATEGORIES:
        raise InferenceError(
            f"column {name!r} has {len(distinct)} distinct values (e.g. {list(distinct[:3])}),"
            f" more than {MAX_CATEGORIES}: an identifier or free text, not a category; drop it"
        )
    try:
        ordered = sorted(distinct)
    except TypeError:  # mixed types in one column: order by text
        ordered = sorted(distinct, key=str)
    return tuple(str(value) for value in ordered)


def _infer_target(series: pd.Series) -> tuple[ColumnSpec, str, str]:
    name, values = str(series.name), series.dropna()
    missing = _missing(series)
    if values.empty:
        raise InferenceError(f"target column {name!r} has no values")
    _refuse_infinite(values, f"target column {name!r}")
    numeric = types.is_numeric_dtype(series.dtype) and not types.is_bool_dtype(series.dtype)
    whole = numeric and bool((values == values.round()).all())
    if not numeric or (whole and values.nunique() <= MAX_CLASSES):
        classes = _categories(values, name)
        if len(classes) < 2:
            raise InferenceError(f"target column {name!r} has one value, {classes[0]!r}: no task")
        spec = ColumnSpec(name=name, dtype="category", categories=classes, nullable=missing > 0)
        shares = values.astype(str).value_counts(normalize=True)
        text = (
            f"target {name}: classification, {len(classes)} classes [{', '.join(classes)}]"
            f" (smallest {shares.idxmin()}: {shares.min():.1%} of rows)"
        )
        return spec, "classification", f"{text}{_target_missing_note(missing)}"
    dtype = "int" if types.is_integer_dtype(series.dtype) else "float"
    lowest = float(values.min())
    low, high, note = _range(lowest, float(values.max()), whole=dtype == "int")
    spec = ColumnSpec(name=name, dtype=dtype, min=low, max=high, nullable=missing > 0)
    sign = (
        "strictly positive: percentage errors are defined"
        if lowest > 0
        else f"not strictly positive (min {_fmt(lowest)}): percentage errors are not defined"
    )
    text = f"target {name}: regression, {sign}; {dtype}, range {_fmt(low)}–{_fmt(high)} ({note})"
    return spec, "regression", f"{text}{_target_missing_note(missing)}"


def _infer_rules(frame: pd.DataFrame) -> tuple[ContractRules, str]:
    """Default rules, loosened only as far as the sample itself needs to pass them."""
    rows, defaults = len(frame), ContractRules()
    duplicated = float(frame.duplicated().mean())
    min_rows = min(defaults.min_rows, rows)
    duplicates = max(defaults.max_duplicate_share, math.ceil(duplicated * 100) / 100)
    rules = ContractRules(min_rows=min_rows, max_duplicate_share=duplicates)
    text = (
        f"rules: at least {min_rows} rows (sample: {rows}), at most {duplicates:.0%} duplicated"
        f" rows (sample: {duplicated:.1%}), unknown categories tolerated up to"
        f" {rules.max_unknown_category_share:.0%}, no columns beyond these"
    )
    return rules, text


def _range(lo: float, hi: float, whole: bool) -> tuple[float, float, str]:
    """The observed range widened by MARGIN of its span, rounded outward; see the module doc."""
    margin = MARGIN * ((hi - lo) or abs(lo) or 1.0)
    step = 10.0 ** math.floor(math.log10(margin))
    step = max(step, 1.0) if whole else step
    digits = max(0, -math.floor(math.log10(step)))
    low = round(math.floor((lo - margin) / step) * step, digits)
    high = round(math.ceil((hi + margin) / step) * step, digits)
    spread = f"±{MARGIN:.0%} of the span" if hi > lo else f"constant in the sample, ±{MARGIN:.0%}"
    note = f"observed {_fmt(lo)}–{_fmt(hi)}, {spread}"
    if lo > 0 and low <= 0:
        low = 1.0 if whole else _leading_digit_floor(lo / 2)
        note += f"; strictly positive, floor {_fmt(low)}"
    elif lo >= 0 and low < 0:
        low = 0.0
        note += "; never negative, clipped at 0"
    return min(low, lo), max(high, hi), note


def _leading_digit_floor(value: float) -> float:
    exponent = math.floor(math.log10(value))
    return round(math.floor(value / 10.0**exponent) * 10.0**exponent, max(0, -exponent))


def _refuse_infinite(values: pd.Series, label: str) -> None:
    if types.is_float_dtype(values.dtype):
        infinite = int(np.isinf(values.to_numpy(dtype=float)).sum())
        if infinite:
            raise InferenceError(
                f"{label} has {infinite} infinite values, which a contract refuses;"
                " fix or drop those rows first"
            )


def _missing(series: pd.Series) -> int:
    return int(series.isna().sum())


def _missing_note(missing: int, rows: int) -> str:
    return f", nullable ({missing} missing, {missing / rows:.1%})" if missing else ""


def _target_missing_note(missing: int) -> str:
    if not missing:
        return ""
    return f"; {missing} rows have no target: allowed so this file validates, but unlearnable"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"
