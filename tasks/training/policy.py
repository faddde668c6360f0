"""The training policy: the estimator's parameters, set per model or per run, and the optional
time-boxed search for better ones."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The estimator parameters a search may choose, and the bounds of their ranges (log-uniform:
# no zero).
SEARCHED = ("learning_rate", "max_leaf_nodes", "l2_regularization")
Rate = Annotated[float, Field(gt=0, le=1)]
Leaves = Annotated[int, Field(ge=2, le=4096)]
Penalty = Annotated[float, Field(gt=0, le=1e6)]


class SearchPolicy(BaseModel):
    """Successive halving over random candidates (tasks/training/search.py), off by default.

    The resource halved is training rows, not `max_iter`: the learning rate and the number of
    iterations trade off against each other, so rounds cut short in iterations would favour the
    fastest learners rather than the best; `max_iter` stays the policy's own. Each range is
    sampled log-uniformly. Same data + seed, same choice, as long as the search ends within its
    budget; one cut short by `budget_s` depends on the machine's speed and says so.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(False, description="search before training; off: the policy's values")
    budget_s: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="wall-clock time box of the search (a fit under way when it ends finishes;"
        " the final model's training comes after it)",
    )
    candidates: int = Field(16, ge=2, le=1000, description="random candidates in the first round")
    factor: int = Field(3, ge=2, le=10, description="each round keeps 1/factor, on factor x rows")
    cv: int = Field(3, ge=2, le=10, description="cross-validation folds per candidate")
    learning_rate: tuple[Rate, Rate] = Field(
        (0.01, 0.3), description="learning_rate range searched"
    )
    max_leaf_nodes: tuple[Leaves, Leaves] = Field(
        (4, 64), description="max_leaf_nodes range searched"
    )
    l2_regularization: tuple[Penalty, Penalty] = Field(
        (1e-3, 10.0), description="l2_regularization range searched"
    )

    @model_validator(mode="after")
    def _ranges(self) -> SearchPolicy:
        for name in SEARCHED:
            low, high = getattr(self, name)
            if not low < high:
                raise ValueError(
                    f"search.{name} ({low}, {high}) must be (low, high) with low < high"
                )
        return self

    def space(self) -> dict[str, tuple[float, float]]:
        """The searched estimator parameters and their ranges."""
        return {name: getattr(self, name) for name in SEARCHED}


class TrainingPolicy(BaseModel):
    """Histogram gradient boosting's parameters, the target transform, and the optional search
    that replaces the searched parameters with the best it finds."""

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
    search: SearchPolicy = Field(
        default_factory=SearchPolicy, description="time-boxed search for the estimator's values"
    )

    def params(self) -> dict[str, object]:
        """What `train_model` takes: the estimator's values, and `search` only when it is on
        (train_model takes it out of the estimator's parameters and records what it did)."""
        exclude = None if self.search.enabled else {"search"}
        return self.model_dump(exclude=exclude)


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
