"""The inputs the behavioural checks and slices probe a model with, for regressors and
classifiers alike (tasks/training/evaluation.py, classification.py): one sample, one way to
label slices, one set of edge rows, one category shift."""

from __future__ import annotations

import pandas as pd

from tasks.data.contract import ColumnSpec, DataContract

BEHAVIOUR_SAMPLE = 300


def behaviour_sample(holdout: pd.DataFrame, contract: DataContract, seed: int) -> pd.DataFrame:
    """Up to BEHAVIOUR_SAMPLE holdout rows (features only), drawn with the run's seed."""
    return (
        holdout[contract.feature_names]
        .sample(n=min(BEHAVIOUR_SAMPLE, len(holdout)), random_state=seed)
        .reset_index(drop=True)
    )


def slice_labels(spec: ColumnSpec, values: pd.Series) -> pd.Series:
    """Each row's slice of `spec`: its bin when the contract bins it, else its value."""
    if spec.slice_bins:
        return pd.cut(values, bins=list(spec.slice_bins), include_lowest=True).astype(str)
    return values.astype(str)


def edge_rows(contract: DataContract, sample: pd.DataFrame) -> pd.DataFrame:
    """Two rows: every feature at its contract minimum, then at its maximum (categories: the
    last one; a bound the contract leaves open keeps the sample's value)."""
    rows = []
    for bound in ("min", "max"):
        row = sample.iloc[0].copy()
        for spec in contract.columns:
            value = getattr(spec, bound) if spec.is_numeric else (spec.categories or ("",))[-1]
            row[spec.name] = value if value is not None else row[spec.name]
        rows.append(row)
    return pd.DataFrame(rows)[contract.feature_names]


def shifted_category(sample: pd.DataFrame, spec: ColumnSpec) -> pd.DataFrame:
    """The sample with `spec`'s category moved to the next one (an unknown value to the first)."""
    categories = list(spec.categories or ())
    shifted = sample.copy()
    shifted[spec.name] = [
        categories[(categories.index(v) + 1) % len(categories)] if v in categories
        else categories[0]
        for v in sample[spec.name]
    ]  # fmt: skip
    return shifted
