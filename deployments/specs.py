"""prefect.yaml read into typed deployment specs; anything the set-up would not honour is refused.

The set-up registers deployments itself (deployments/register.py) rather than through
`prefect deploy`, so a key it does not understand — a `build` or `pull` section, an SLA — must
stop it rather than be dropped without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from deployments.targets import PROJECT_ROOT

PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkPoolSpec(_Strict):
    name: str
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)


class ConcurrencySpec(_Strict):
    limit: int = Field(ge=1)
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = "ENQUEUE"
    grace_period_seconds: int | None = Field(default=None, ge=60, le=86400)


class ScheduleSpec(_Strict):
    cron: str | None = None
    interval: float | None = Field(default=None, gt=0)
    rrule: str | None = None
    anchor_date: str | None = None
    timezone: str | None = None
    active: bool = True
    parameters: dict[str, Any] = Field(default_factory=dict)
    slug: str | None = None


class DeploymentSpec(_Strict):
    """One entry of prefect.yaml's `deployments`."""

    name: str
    entrypoint: str = Field(pattern=r"^[\w./-]+\.py:\w+$")
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    work_pool: WorkPoolSpec
    concurrency_limit: int | ConcurrencySpec | None = None
    triggers: list[dict[str, Any]] = Field(default_factory=list)
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    paused: bool = False
    enforce_parameter_schema: bool = True


class ProjectFile(_Strict):
    """prefect.yaml: its name, the Prefect it was written for, anchors, and the deployments."""

    name: str
    prefect_version: str = Field(alias="prefect-version")
    definitions: dict[str, Any] = Field(default_factory=dict)
    deployments: list[DeploymentSpec] = Field(min_length=1)


def parse_specs(document: dict[str, Any]) -> list[DeploymentSpec]:
    """The deployments of a parsed prefect.yaml; ValueError if it holds what we would ignore."""
    specs = ProjectFile.model_validate(document).deployments
    names = [spec.name for spec in specs]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"prefect.yaml names a deployment twice: {', '.join(duplicated)}")
    return specs


def read_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """The deployments of the project's prefect.yaml."""
    return parse_specs(yaml.safe_load(path.read_text()))
