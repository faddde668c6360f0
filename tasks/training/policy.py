"""The training policy: the estimator's parameters, set per model or per run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainingPolicy(BaseModel):
    """Histogram gradient boosting's parameters and the target transform."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_iter: int = Field(300, ge=1, le=100_000, description="boosting iterations")
    learning_rate: float = Field(0.08, gt=0, le=1, description="shrinkage per iteration")
    max_leaf_nodes: int = Field(31, ge=2, le=4096, description="leaves per tree")
    l2_regularization: float = Field(0.1, ge=0, description="L2 penalty on leaf values")
    target_transform: Literal["none", "log"] = Field(
        "none",
        description="none: fit the target as it is; log: fit log(target), predict exp (a target"
        " that is not strictly positive in the training data is refused before fitting)",
    )

    def params(self) -> dict[str, object]:
        return self.model_dump()


class TrainingSetPolicy(BaseModel):
    """Where a retrain's data comes from when nobody hands it a batch (a drift alert)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    lookback_days: float = Field(
        30.0, gt=0, le=3660, description="how far back labelled serving traffic is read"
    )
    min_labelled_rows: int = Field(
        500, ge=10, description="labelled traffic rows needed; fewer defers the retrain"
    )
    add_reference: bool = Field(
        True, description="add the champion's training snapshot to the traffic rows"
    )
    max_reference_share: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="the reference is sampled down to at most this share of the set, so recent"
        " traffic weighs more than the past it drifted from",
    )
