"""The training policy: the estimator's parameters, set per model or per run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainingPolicy(BaseModel):
    """Histogram gradient boosting's parameters and the target transform."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_iter: int = Field(300, ge=1, le=100_000, description="boosting iterations")
    learning_rate: float = Field(0.08, gt=0, le=1, description="shrinkage per iteration")
    max_leaf_nodes: int = Field(31, ge=2, le=4096, description="leaves per tree")
    l2_regularization: float = Field(0.1, ge=0, description="L2 penalty on leaf values")
    log_target: bool = Field(True, description="fit log(target), predict exp (targets > 0 only)")

    def params(self) -> dict[str, object]:
        return self.model_dump()
