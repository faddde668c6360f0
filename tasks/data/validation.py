"""Data validation against the contract: every violation at once, named, with counts and examples.

Column rules (presence, extra columns, nulls, ranges, finiteness, whole numbers) run through a
pandera schema built from the contract. Type coercion and the data-set rules (row count,
duplicates, share of unknown categories) are checked here, because they need the whole frame or a
tolerance that pandera's element-wise checks do not express.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pydantic import BaseModel, ConfigDict

from tasks.data.contract import ColumnSpec, DataContract, class_text

MAX_EXAMPLES = 5


class Violation(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    column: str | None
    count: int
    examples: list[str]

    def __str__(self) -> str:
        where = f"column {self.column!r}" if self.column else "data set"
        examples = f" e.g. {', '.join(self.examples)}" if self.examples else ""
        return f"{where}: {self.rule} ({self.count} failing){examples}"


class ValidationReport(BaseModel):
    """The verdict on one batch of data: passed or not, and every violation found."""

    model_config = ConfigDict(frozen=True)

    contract: str
    rows: int
    violations: list[Violation]
    warnings: list[Violation]

    @property
    def passed(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        if self.passed:
            return f"{self.rows} rows pass contract {self.contract!r}"
        lines = "\n".join(f"- {violation}" for violation in self.violations)
        return f"{self.rows} rows violate contract {self.contract!r}:\n{lines}"


class DataValidationError(ValueError):
    """A batch violates the contract; carries the full report."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


def _examples(values: pd.Series | list) -> list[str]:
    return [
        repr(value) for value in list(pd.unique(pd.Series(values, dtype=object)))[:MAX_EXAMPLES]
    ]


def _coerce_numeric(frame: pd.DataFrame, contract: DataContract) -> tuple[pd.DataFrame, list]:
    """Numeric columns as float; values that are not numbers become violations (and NaN)."""
    coerced, violations = frame.copy(), []
    for spec in (*contract.columns, contract.target):
        if not spec.is_numeric or spec.name not in frame:
            continue
        numbers = pd.to_numeric(frame[spec.name], errors="coerce")
        bad = numbers.isna() & frame[spec.name].notna()
        if bad.any():
            examples = _examples(frame.loc[bad, spec.name])
            violations.append(
                Violation(
                    rule=f"not a number ({spec.dtype})",
                    column=spec.name,
                    count=int(bad.sum()),
                    examples=examples,
                )
            )
        coerced[spec.name] = numbers.astype(float)
    return coerced, violations


def _column_schema(spec: ColumnSpec) -> pa.Column:
    checks = []
    if spec.is_numeric:
        checks.append(pa.Check(lambda s: np.isfinite(s), element_wise=False, name="finite"))
        if spec.min is not None or spec.max is not None:
            low = -np.inf if spec.min is None else spec.min
            high = np.inf if spec.max is None else spec.max
            checks.append(pa.Check.in_range(low, high))
        if spec.dtype == "int":
            checks.append(pa.Check(lambda s: s == np.round(s), name="whole number"))
        return pa.Column(float, checks=checks, nullable=spec.nullable)
    return pa.Column(nullable=spec.nullable)


def _schema_violations(frame: pd.DataFrame, contract: DataContract) -> list[Violation]:
    schema = pa.DataFrameSchema(
        {spec.name: _column_schema(spec) for spec in (*contract.columns, contract.target)},
        strict=not contract.rules.allow_extra_columns,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return _group_failures(errors.failure_cases)
    return []


def _group_failures(cases: pd.DataFrame) -> list[Violation]:
    rules = {
        "column_in_dataframe": "missing column",
        "column_in_schema": "column not in contract",
        "not_nullable": "null values",
    }
    violations = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        if check in {"column_in_dataframe", "column_in_schema"}:
            # Frame-level checks list every offending column under one group: name each one.
            names = pd.unique(group["failure_case"].astype(str))
            violations += [
                Violation(rule=rules[check], column=n, count=1, examples=[]) for n in names
            ]
            continue
        rule = rules.get(str(check), str(check).replace("in_range", "outside the range "))
        examples = [] if check == "not_nullable" else _examples(group["failure_case"])
        violations.append(
            Violation(
                rule=rule,
                column=None if pd.isna(column) else str(column),
                count=len(group),
                examples=examples,
            )
        )
    return violations


def _dataset_violations(frame: pd.DataFrame, contract: DataContract) -> tuple[list, list]:
    rules, violations, notes = contract.rules, [], []
    if len(frame) < rules.min_rows:
        violations.append(
            Violation(
                rule=f"too few rows: {len(frame)} < {rules.min_rows}",
                column=None,
                count=len(frame),
                examples=[],
            )
        )
    present = [name for name in contract.all_names if name in frame]
    duplicated = int(frame.duplicated(subset=present).sum()) if present else 0
    if duplicated and duplicated > rules.max_duplicate_share * len(frame):
        violations.append(
            Violation(
                rule=f"duplicated rows: {duplicated / len(frame):.1%} > {rules.max_duplicate_share:.1%}",
                column=None,
                count=duplicated,
                examples=[],
            )
        )
    for spec in contract.columns:
        if spec.is_numeric or spec.name not in frame:
            continue
        values = frame[spec.name]
        unknown = values.notna() & ~values.astype(str).isin(spec.categories or ())
        share = float(unknown.mean())
        if unknown.any():
            finding = Violation(
                rule=f"unknown categories: {share:.1%} (tolerated {rules.max_unknown_category_share:.1%})",
                column=spec.name,
                count=int(unknown.sum()),
                examples=_examples(values[unknown]),
            )
            (violations if share > rules.max_unknown_category_share else notes).append(finding)
    return violations + _label_violations(frame, contract), notes


def _label_violations(frame: pd.DataFrame, contract: DataContract) -> list[Violation]:
    """A classifier's labels outside its classes, none tolerated: a model trained on them would
    answer a class the contract (and so the model server) does not have. Labels compare as the
    contract's class text, so 1, 1.0 and "1" are the same class."""
    name, classes = contract.target.name, contract.classes
    if classes is None or name not in frame:
        return []
    labels = class_text(frame[name])
    unknown = labels.notna() & ~labels.isin(classes)
    if not unknown.any():
        return []
    return [
        Violation(
            rule=f"labels outside the classes {list(classes)}",
            column=name,
            count=int(unknown.sum()),
            examples=_examples(frame[name][unknown]),
        )
    ]


def validate_frame(frame: pd.DataFrame, contract: DataContract) -> ValidationReport:
    """Check a batch against the contract and report every problem found (never just the first)."""
    coerced, type_violations = _coerce_numeric(frame, contract)
    schema_violations = _schema_violations(coerced, contract)
    bad_types = {violation.column for violation in type_violations}
    # A non-number became NaN above; report it once, as a type problem, not also as a null.
    schema_violations = [
        v.model_copy(update={"count": int(frame[v.column].isna().sum())})
        if v.rule == "null values" and v.column in bad_types
        else v
        for v in schema_violations
    ]
    schema_violations = [v for v in schema_violations if v.count]
    dataset_violations, notes = _dataset_violations(frame, contract)
    return ValidationReport(
        contract=contract.name,
        rows=len(frame),
        violations=type_violations + schema_violations + dataset_violations,
        warnings=notes,
    )


def conform(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """The validated frame restricted to contract columns, numeric columns as float, in order."""
    coerced, _ = _coerce_numeric(frame[contract.all_names], contract)
    for spec in contract.columns:
        if not spec.is_numeric:
            coerced[spec.name] = coerced[spec.name].astype(str)
    if contract.classes is not None:  # the classes as the contract spells them ("1", not "1.0")
        coerced[contract.target.name] = class_text(coerced[contract.target.name])
    return coerced
