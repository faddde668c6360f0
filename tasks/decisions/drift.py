"""The drift verdict: a pure function from per-column drift results to drifted / not drifted.

Nothing here computes statistics or talks to Evidently; `tasks.drift.stats` (exact, all rows) and
`tasks.drift.check` (Evidently's report) produce `ColumnDrift` results, and `judge_drift` decides.

Values outside the data contract (`OffContract`: categories it does not list, numbers outside its
[min, max]) reach the serving logs because the model server accepts them. They are counted over
every logged row and always reported; above a tolerated share they drift their column, because
they are data the model was never validated for: the contract refuses a training batch with more
unknown categories than `rules.max_unknown_category_share` (so the serving window is held to the
same line), and any number out of range (so the model extrapolates there; `max_out_of_range_share`
keeps a few stray requests from calling a retrain). A column with too few values to be judged
is not drifted by them either; its counts are still reported.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

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
    max_out_of_range_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="a column drifts when more than this share of its current numbers lie "
        "outside the contract's [min, max]",
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


class OffContract(BaseModel):
    """One column's current values outside the data contract, which the model server accepted.

    `checked` is 0 for a column the contract does not describe (the prediction); `tolerated` is
    the share of the checked values they may reach before they drift the column.
    """

    model_config = ConfigDict(frozen=True)

    checked: int = Field(0, ge=0, description="non-null current values held against the contract")
    unknown_categories: int = Field(0, ge=0, description="values outside the contract's categories")
    below_min: int = Field(0, ge=0, description="numbers below the contract's min")
    above_max: int = Field(0, ge=0, description="numbers above the contract's max")
    tolerated: float = Field(1.0, ge=0, le=1, description="share above which they drift the column")
    examples: list[str] = Field(
        default_factory=list, description="a few of them: commonest categories, extreme numbers"
    )

    @computed_field
    @property
    def out_of_range(self) -> int:
        return self.below_min + self.above_max

    @computed_field
    @property
    def share(self) -> float:
        return self.count / self.checked if self.checked else 0.0

    @property
    def count(self) -> int:
        return self.unknown_categories + self.out_of_range

    @property
    def exceeded(self) -> bool:
        return self.count > 0 and self.share > self.tolerated

    def describe(self) -> str:
        """E.g. "120 of 2000 values outside the contract (120 unknown categories; 6.0% > 2.0%
        tolerated; e.g. 'lakeside')"."""
        kinds = [
            f"{count} {what}"
            for count, what in (
                (self.unknown_categories, "unknown categories"),
                (self.below_min, "below min"),
                (self.above_max, "above max"),
            )
            if count
        ]
        relation = ">" if self.exceeded else "<="
        shown = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        return (
            f"{self.count} of {self.checked} values outside the contract ({', '.join(kinds)}; "
            f"{self.share:.1%} {relation} {self.tolerated:.1%} tolerated{shown})"
        )


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
    off_contract: OffContract = Field(
        default_factory=OffContract, description="current values outside the data contract"
    )
    note: str = ""

    @property
    def reason(self) -> str:
        if self.status != "judged":
            text = f"{self.name}: not judged ({self.note})"
        else:
            relation = ">=" if self.score >= self.threshold else "<"
            text = f"{self.name}: {self.method} {self.score:.4g} {relation} {self.threshold:.4g}"
        if self.unseen:
            shown = ", ".join(f"{value!r} {share:.1%}" for value, share in self.unseen.items())
            text += f"; {self.unseen_share:.1%} unseen in reference ({shown})"
        if self.off_contract.count:
            text += f"; {self.off_contract.describe()}"
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
    off_contract: dict[str, OffContract] = Field(
        default_factory=dict,
        description="columns holding current values outside the data contract, judged or not",
    )


def column_drifted(
    score: float,
    threshold: float,
    unseen_share: float,
    policy: DriftPolicy,
    off_contract: OffContract | None = None,
) -> bool:
    """A column drifts when its score reaches the threshold, unseen values are common enough, or
    values outside the contract pass their tolerated share (see the module's docstring)."""
    outside = off_contract is not None and off_contract.exceeded
    return score >= threshold or unseen_share >= policy.unseen_share or outside


def _outside(columns: list[ColumnDrift]) -> dict[str, OffContract]:
    return {c.name: c.off_contract for c in columns if c.off_contract.count}


def _insufficient(
    reasons: list[str], judged: int, policy: DriftPolicy, outside: dict[str, OffContract]
) -> DriftVerdict:
    return DriftVerdict(
        status="insufficient_data",
        drifted=False,
        share=None,
        drift_share=policy.drift_share,
        judged_features=judged,
        drifted_columns=[],
        reasons=reasons,
        off_contract=outside,
    )


def judge_drift(columns: list[ColumnDrift], policy: DriftPolicy) -> DriftVerdict:
    """Dataset drift when enough features drift, or the target / prediction drifts."""
    features = [c for c in columns if c.role == "feature"]
    judged = [c for c in features if c.status == "judged"]
    skipped = [c.reason for c in columns if c.status == "insufficient"]
    outside = _outside(columns)
    if not features:
        return _insufficient(["no feature columns to compare"], 0, policy, outside)
    # Judged columns holding values outside the contract are named even when not drifted.
    counted = [c for c in columns if c.status == "judged" and c.off_contract.count]
    if len(judged) < policy.min_judged_share * len(features):
        head = (
            f"insufficient data: {len(judged)} of {len(features)} features could be judged "
            f"(need {policy.min_judged_share:.0%}, at least {policy.min_rows} values per side)"
        )
        reasons = [head, *skipped, *(c.reason for c in counted)]
        return _insufficient(reasons, len(judged), policy, outside)
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
    reasons += [c.reason for c in counted if not c.drifted]
    return DriftVerdict(
        status="drift" if is_drift else "no_drift",
        drifted=is_drift,
        share=share,
        drift_share=policy.drift_share,
        judged_features=len(judged),
        drifted_columns=[c.name for c in drifted],
        reasons=reasons,
        off_contract=outside,
    )
