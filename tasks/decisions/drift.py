"""The drift verdict: a pure function from per-column drift results to drifted / not drifted.

Nothing here computes statistics or talks to Evidently; `tasks.drift.stats` (exact, all rows) and
`tasks.drift.check` (Evidently's report) produce `ColumnDrift` results, and `judge_drift` decides.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DriftMethod = Literal["psi", "jensenshannon"]
Role = Literal["feature", "target", "prediction"]
Status = Literal["judged", "insufficient", "absent"]


class DriftPolicy(BaseModel):
    """How drift is measured and when it counts; the same policy drives our pass and Evidently's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: DriftMethod = Field(
        "psi",
        description="per-column statistic, numeric and categorical alike: population stability "
        "index or Jensen-Shannon distance (natural log); a higher score is more drift",
    )
    numeric_threshold: float = Field(
        0.1, gt=0, description="numeric column drifts at score >= this"
    )
    categorical_threshold: float = Field(
        0.1, gt=0, description="categorical column drifts at score >= this"
    )
    drift_share: float = Field(
        0.3, gt=0, le=1, description="dataset drift when this share of judged features drifts"
    )
    target_drift_is_drift: bool = Field(
        True, description="a drifted target (or prediction) alone is dataset drift"
    )
    unseen_share: float = Field(
        0.01, gt=0, le=1, description="categories unseen in reference at this share mean drift"
    )
    numeric_bins: int = Field(20, ge=2, le=1000, description="reference-quantile bins per column")
    discrete_values: int = Field(
        20,
        ge=1,
        le=1000,
        description="a numeric column with at most this many values is binned "
        "by value (as Evidently does)",
    )
    min_rows: int = Field(
        100, ge=1, description="fewest non-null values per side to judge a column"
    )
    min_judged_share: float = Field(
        0.5, gt=0, le=1, description="fewer judged features than this share: insufficient data"
    )
    evidently_sample_rows: int = Field(
        20_000, ge=100, description="rows per side sampled for Evidently's report"
    )
    edge_sample_rows: int = Field(
        100_000, ge=1000, description="reference rows sampled to place the bin edges"
    )
    prediction_column: str = Field("prediction", min_length=1, description="model output column")
    seed: int = Field(0, ge=0, description="seed of every sample taken")

    def threshold(self, kind: Literal["numeric", "categorical"]) -> float:
        return self.numeric_threshold if kind == "numeric" else self.categorical_threshold


class ColumnDrift(BaseModel):
    """One column's comparison of current against reference."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    kind: Literal["numeric", "categorical"]
    method: str
    status: Status
    score: float | None = None
    threshold: float
    drifted: bool = False
    reference_rows: int = 0
    current_rows: int = 0
    unseen_share: float = Field(0.0, description="share of current values unseen in reference")
    unseen: dict[str, float] = Field(default_factory=dict, description="top unseen value -> share")
    note: str = ""

    @property
    def reason(self) -> str:
        if self.status != "judged":
            return f"{self.name}: not judged ({self.note})"
        relation = ">=" if self.drifted else "<"
        text = f"{self.name}: {self.method} {self.score:.4g} {relation} {self.threshold:.4g}"
        if self.unseen:
            shown = ", ".join(f"{value!r} {share:.1%}" for value, share in self.unseen.items())
            text += f"; {self.unseen_share:.1%} unseen in reference ({shown})"
        return text


class DriftVerdict(BaseModel):
    """The dataset-level decision and why; `drifted` is True only for status "drift"."""

    model_config = ConfigDict(frozen=True)

    status: Literal["drift", "no_drift", "insufficient_data"]
    drifted: bool
    share: float | None
    drift_share: float
    judged_features: int
    drifted_columns: list[str]
    reasons: list[str]


def column_drifted(
    score: float, threshold: float, unseen_share: float, policy: DriftPolicy
) -> bool:
    """A column drifts when its score reaches the threshold or unseen values are common enough."""
    return score >= threshold or unseen_share >= policy.unseen_share


def _insufficient(reasons: list[str], judged: int, policy: DriftPolicy) -> DriftVerdict:
    return DriftVerdict(
        status="insufficient_data",
        drifted=False,
        share=None,
        drift_share=policy.drift_share,
        judged_features=judged,
        drifted_columns=[],
        reasons=reasons,
    )


def judge_drift(columns: list[ColumnDrift], policy: DriftPolicy) -> DriftVerdict:
    """Dataset drift when enough features drift, or the target / prediction drifts."""
    features = [c for c in columns if c.role == "feature"]
    judged = [c for c in features if c.status == "judged"]
    skipped = [c.reason for c in columns if c.status == "insufficient"]
    if not features:
        return _insufficient(["no feature columns to compare"], 0, policy)
    if len(judged) < policy.min_judged_share * len(features):
        head = (
            f"insufficient data: {len(judged)} of {len(features)} features could be judged "
            f"(need {policy.min_judged_share:.0%}, at least {policy.min_rows} values per side)"
        )
        return _insufficient([head, *skipped], len(judged), policy)
    drifted = [c for c in columns if c.status == "judged" and c.drifted]
    share = sum(c.role == "feature" for c in drifted) / len(judged)
    reasons = [
        f"{share:.0%} of {len(judged)} judged features drifted "
        f"({'>=' if share >= policy.drift_share else '<'} {policy.drift_share:.0%})"
    ]
    outputs = [c for c in drifted if c.role != "feature"]
    if outputs and policy.target_drift_is_drift:
        reasons.append("drift of " + ", ".join(f"{c.role} {c.name}" for c in outputs))
    is_drift = share >= policy.drift_share or bool(outputs and policy.target_drift_is_drift)
    reasons += [c.reason for c in drifted] + skipped
    return DriftVerdict(
        status="drift" if is_drift else "no_drift",
        drifted=is_drift,
        share=share,
        drift_share=policy.drift_share,
        judged_features=len(judged),
        drifted_columns=[c.name for c in drifted],
        reasons=reasons,
    )
