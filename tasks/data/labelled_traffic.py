"""A training set from labelled serving traffic: logged inputs joined with the truth that arrived.

Pure over data frames: `read_serving_logs` gives the rows, the registry gives the reference.
Rows the model server accepted but the contract does not (an unknown category, a number out of
range, a missing value) are left out and counted: a retrain must not learn from them, and one bad
request must not stop it either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.data.contract import DataContract
from tasks.training.policy import TrainingSetPolicy


@dataclass(frozen=True)
class TrafficSet:
    """The set (None when too small) and the counts behind it."""

    frame: pd.DataFrame | None
    logged_rows: int
    labelled_rows: int
    outside_contract: int
    reference_rows: int
    needed: int

    @property
    def counts(self) -> dict[str, int]:
        return {
            "logged_rows": self.logged_rows,
            "labelled_rows": self.labelled_rows,
            "outside_contract": self.outside_contract,
            "reference_rows": self.reference_rows,
            "needed": self.needed,
        }


def within_contract(frame: pd.DataFrame, contract: DataContract) -> pd.Series:
    """True for rows whose every column the contract accepts (types, ranges, categories, nulls)."""
    keep = pd.Series(True, index=frame.index)
    for spec in (*contract.columns, contract.target):
        column = frame[spec.name]
        if spec.is_numeric:
            values = pd.to_numeric(column, errors="coerce")
            ok = values.notna() & np.isfinite(values.fillna(0.0))
            if spec.min is not None:
                ok &= values.isna() | (values >= spec.min)
            if spec.max is not None:
                ok &= values.isna() | (values <= spec.max)
        else:
            ok = column.notna() & column.astype(str).isin(spec.categories or ())
        if spec.nullable:
            ok |= column.isna()
        keep &= ok
    return keep


def build_training_set(
    logs: pd.DataFrame,
    contract: DataContract,
    policy: TrainingSetPolicy,
    reference: pd.DataFrame | None,
    seed: int,
) -> TrafficSet:
    """Labelled, answered, in-contract traffic rows (+ the sampled reference), or None if too few."""
    answered = logs[logs["status"] == "ok"] if "status" in logs else logs
    labelled = answered[answered["label"].notna()] if "label" in answered else answered.iloc[:0]
    rows = labelled.rename(columns={"label": contract.target.name})
    rows = rows.reindex(columns=[*contract.all_names, "request_id", "row"])  # no logs: no columns
    keep = within_contract(rows, contract)
    traffic = rows[keep].assign(origin="traffic")
    common = {"logged_rows": len(logs), "labelled_rows": len(labelled),
              "outside_contract": int((~keep).sum()), "needed": policy.min_labelled_rows}  # fmt: skip
    if len(traffic) < policy.min_labelled_rows:
        return TrafficSet(frame=None, reference_rows=0, **common)
    parts = [traffic]
    if policy.add_reference and reference is not None and len(reference):
        share = policy.max_reference_share
        cap = int(len(traffic) * share / (1 - share))
        sampled = reference[contract.all_names]
        if len(sampled) > cap:
            sampled = sampled.sample(n=cap, random_state=seed)
        parts.append(sampled.assign(request_id="", row=-1, origin="reference"))
    frame = pd.concat(parts, ignore_index=True)
    frame["row"] = frame["row"].astype("int64")
    frame["request_id"] = frame["request_id"].astype(str)
    return TrafficSet(frame=frame, reference_rows=len(frame) - len(traffic), **common)
