"""The drift check: the exact pass decides, Evidently 0.7 draws the report on a bounded sample.

Evidently keeps everything in memory and slows sharply with rows, so its `DataDriftPreset` runs on
a seeded sample of at most `policy.evidently_sample_rows` rows per side, with the method and the
per-type thresholds named explicitly (never its size-dependent default, which switches between a
K-S p-value and a Wasserstein distance). Evidently is imported inside the functions: importing it
takes seconds, and importing this module must not.

Evidently knows nothing of the data contract: the exact pass's counts of values outside it ride in
the report's metadata, so the report JSON carries them beside Evidently's metrics, and the sample
verdict applies the same off-contract rule as ours (the counts are exact, not a sample statistic).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tasks.data.contract import DataContract
from tasks.decisions.drift import ColumnDrift, DriftPolicy, DriftVerdict, Role, judge_drift
from tasks.drift.stats import (
    DriftInputError,
    column_drift,
    comparable,
    plan_columns,
    target_kind,
)

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

__all__ = [
    "DriftInputError",
    "DriftReport",
    "check_drift",
    "columns_from_snapshot",
    "evidently_report",
    "report_html",
    "report_json",
    "with_off_contract",
]

DRIFT_CHECK = "mlops_drift_check"  # the report's metadata key of the exact pass's results


@dataclass(frozen=True)
class DriftReport:
    """What the drift check hands on: the verdict (from the exact pass), its per-column evidence,
    and Evidently's report on the sample with the verdict the same rules give on it."""

    verdict: DriftVerdict
    columns: tuple[ColumnDrift, ...]
    snapshot: Snapshot | None = None
    sample_verdict: DriftVerdict | None = None
    note: str = ""

    @property
    def report_agrees(self) -> bool | None:
        """Whether Evidently's sampled report reaches the same status (None: no report)."""
        if self.sample_verdict is None:
            return None
        return self.sample_verdict.status == self.verdict.status


def sample_rows(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most `rows` rows, drawn without replacement by a seeded generator, in original order."""
    if len(frame) <= rows:
        return frame
    chosen = np.random.default_rng(seed).choice(len(frame), rows, replace=False)
    return frame.iloc[np.sort(chosen)]


def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    contract: DataContract,
    policy: DriftPolicy,
    only: list[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Snapshot:
    """Evidently's DataDriftPreset on a seeded sample of each side, with the policy's method and
    thresholds; `only` limits it to these columns (e.g. those the exact pass could judge);
    `metadata` is stored with the report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    plan, _ = plan_columns(reference, current, contract, policy)
    ref = comparable(sample_rows(reference, policy.evidently_sample_rows, policy.seed), contract)
    cur = comparable(sample_rows(current, policy.evidently_sample_rows, policy.seed + 1), contract)
    kinds = {
        name: kind
        for name, _, kind in plan
        if (only is None or name in only) and ref[name].notna().any() and cur[name].notna().any()
    }
    if not kinds:
        raise DriftInputError("no column has values on both sides: nothing for Evidently to show")
    names = list(kinds)
    definition = DataDefinition(
        numerical_columns=[name for name in names if kinds[name] == "numeric"],
        categorical_columns=[name for name in names if kinds[name] == "categorical"],
    )
    preset = DataDriftPreset(
        columns=names,
        method=policy.method,
        num_threshold=policy.numeric_threshold,
        cat_threshold=policy.categorical_threshold,
        drift_share=policy.drift_share,
    )
    return Report([preset], metadata=metadata).run(
        current_data=Dataset.from_pandas(cur[names], data_definition=definition),
        reference_data=Dataset.from_pandas(ref[names], data_definition=definition),
    )


def columns_from_snapshot(
    snapshot: Snapshot, contract: DataContract, policy: DriftPolicy
) -> list[ColumnDrift]:
    """Evidently's per-column results as ColumnDrift, so `judge_drift` can judge them too.
    PSI and Jensen-Shannon are distances: a column drifts at score >= threshold, as in Evidently."""
    results = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        name = config["column"]
        role: Role = "feature"
        if name == contract.target.name:
            role = "target"
        elif name not in contract.feature_names:
            role = "prediction"
        kind = "numeric"
        if role == "target":
            kind = target_kind(contract)
        elif role == "feature" and not contract.column(name).is_numeric:
            kind = "categorical"
        score, threshold = float(metric["value"]), float(config["threshold"])
        results.append(
            ColumnDrift(
                name=name,
                role=role,
                kind=kind,
                method=config["method"],
                status="judged",
                score=score,
                threshold=threshold,
                drifted=score >= threshold,
                note="Evidently",
            )
        )
    return results


def report_html(snapshot: Snapshot) -> bytes:
    """The standalone HTML report (scripts inlined), ready to upload next to the model."""
    return snapshot.get_html_str(as_iframe=False).encode("utf-8")


def report_json(snapshot: Snapshot) -> bytes:
    """Evidently's JSON of the report (every metric with its configuration and value) and, under
    "drift_check", the exact pass that `check_drift` stored with it: the verdict and each
    column's result, with its counts of values outside the contract."""
    body = json.loads(snapshot.json())
    exact = snapshot.report.metadata.get(DRIFT_CHECK)
    if exact:
        body["drift_check"] = json.loads(exact)
    return json.dumps(body).encode("utf-8")


def with_off_contract(
    sampled: Sequence[ColumnDrift], exact: Sequence[ColumnDrift]
) -> list[ColumnDrift]:
    """Evidently's columns with the exact pass's off-contract counts, drifted by them as ours."""
    counts = {column.name: column.off_contract for column in exact}
    columns = []
    for column in sampled:
        outside = counts.get(column.name)
        if outside is not None:
            drifted = column.drifted or outside.exceeded
            column = column.model_copy(update={"off_contract": outside, "drifted": drifted})
        columns.append(column)
    return columns


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    contract: DataContract,
    policy: DriftPolicy | None = None,
    with_report: bool = True,
) -> DriftReport:
    """Exact statistics over all rows, the verdict on them, and Evidently's report on a sample."""
    policy = policy or DriftPolicy()
    columns = column_drift(reference, current, contract, policy)
    verdict = judge_drift(columns, policy)
    if not with_report:
        return DriftReport(verdict, tuple(columns), note="report not requested")
    if verdict.status == "insufficient_data":
        return DriftReport(verdict, tuple(columns), note="no report: insufficient data")
    judged = [column.name for column in columns if column.status == "judged"]
    exact = {
        "verdict": verdict.model_dump(mode="json"),
        "columns": [column.model_dump(mode="json") for column in columns],
    }
    metadata = {DRIFT_CHECK: json.dumps(exact)}
    snapshot = evidently_report(reference, current, contract, policy, judged, metadata)
    sampled = with_off_contract(columns_from_snapshot(snapshot, contract, policy), columns)
    sample_verdict = judge_drift(sampled, policy)
    rows = min(len(current), policy.evidently_sample_rows)
    note = f"Evidently report on a seeded sample of {rows} current rows"
    return DriftReport(verdict, tuple(columns), snapshot, sample_verdict, note)
