"""prefect.yaml's deployments registered on a target's pool — idempotently.

Done through the client rather than `prefect deploy`: with `--all`, Prefect 3.9 ignores
`--pool` and `--job-variable`, and every deploy, changed or not, replaces the schedules (and
the auto-scheduled runs) and deletes and recreates the trigger automations. Here a deployment
is written only when a field differs from what the server holds (its triggers:
deployments/triggers.py), with the same fields `prefect deploy` would write.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import construct_schedule
from prefect.exceptions import ObjectNotFound
from prefect.utilities.callables import parameter_schema

from deployments.changes import Change
from deployments.specs import DeploymentSpec, ScheduleSpec
from deployments.targets import Target
from deployments.triggers import trigger_automations

SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory"
COMPARED = (
    "work_pool_name", "work_queue_name", "entrypoint", "path", "pull_steps", "job_variables",
    "parameters", "description", "tags", "version", "paused", "enforce_parameter_schema",
    "parameter_openapi_schema", "concurrency_limit", "concurrency_options", "schedules",
)  # fmt: skip


@dataclass(frozen=True)
class PlannedDeployment:
    """What one deployment should be on the server: `create_deployment`'s arguments."""

    flow_name: str
    spec: DeploymentSpec
    fields: dict[str, Any]

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.spec.name}"


def plan(spec: DeploymentSpec, target: Target) -> PlannedDeployment:
    """The deployment `spec` on `target`, as `prefect deploy` would have made it."""
    flow = load_flow(spec.entrypoint)
    limit, options = _concurrency(spec)
    fields = {
        "name": spec.name,
        "version": flow.version,
        "description": spec.description or flow.description,
        "entrypoint": spec.entrypoint,
        "path": None,
        "pull_steps": [{SET_WORKING_DIRECTORY: {"directory": target.working_directory}}],
        "work_pool_name": target.pool,
        "work_queue_name": spec.work_pool.work_queue_name,
        "job_variables": _job_variables(spec.work_pool.job_variables, target.job_variables),
        "parameters": dict(spec.parameters),
        "tags": list(spec.tags),
        "paused": spec.paused,
        "enforce_parameter_schema": spec.enforce_parameter_schema,
        "parameter_openapi_schema": parameter_schema(flow).model_dump(exclude_unset=True),
        "concurrency_limit": limit,
        "concurrency_options": options,
        "schedules": [_schedule(schedule) for schedule in spec.schedules],
    }
    trigger_automations(spec, UUID(int=0))  # a bad trigger stops the set-up before any write
    return PlannedDeployment(flow.name, spec, fields)


def load_flow(entrypoint: str) -> Flow:
    """The flow at `<file>:<name>` of prefect.yaml (a path under flows/), imported as its module."""
    path, _, attribute = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, attribute)
    if not isinstance(flow, Flow):
        raise TypeError(f"{entrypoint} is not a Prefect flow")
    return flow


def ensure_deployment(client: SyncPrefectClient, planned: PlannedDeployment) -> tuple[UUID, Change]:
    """Create the deployment, or rewrite it if any registered field differs; else leave it."""
    try:
        existing = client.read_deployment_by_name(planned.full_name)
    except ObjectNotFound:
        existing = None
    if existing is not None:
        differing = [k for k in COMPARED if _held(existing, k) != _planned(planned.fields, k)]
        if not differing:
            return existing.id, Change("deployment", planned.full_name, "unchanged")
    flow_id = client.create_flow_from_name(planned.flow_name)
    deployment_id = client.create_deployment(flow_id=flow_id, **planned.fields)
    if existing is None:
        return deployment_id, Change("deployment", planned.full_name, "created")
    return deployment_id, Change("deployment", planned.full_name, "updated", ", ".join(differing))


def _concurrency(spec: DeploymentSpec) -> tuple[int | None, ConcurrencyOptions | None]:
    """prefect.yaml's `concurrency_limit` (a number, or a limit with its collision strategy)."""
    declared = spec.concurrency_limit
    if declared is None or isinstance(declared, int):
        return declared, None
    return declared.limit, ConcurrencyOptions(
        **declared.model_dump(exclude={"limit"}, exclude_none=True)
    )


def _job_variables(declared: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """prefect.yaml's job variables under the target's; the environments are merged."""
    merged = {**declared, **target}
    if "env" in declared and "env" in target:
        merged["env"] = {**declared["env"], **target["env"]}
    return merged


def _schedule(spec: ScheduleSpec) -> DeploymentScheduleCreate:
    schedule = construct_schedule(
        cron=spec.cron,
        interval=spec.interval,
        rrule=spec.rrule,
        anchor_date=spec.anchor_date,
        timezone=spec.timezone,
    )
    return DeploymentScheduleCreate(
        schedule=schedule, active=spec.active, parameters=spec.parameters, slug=spec.slug
    )


def _held(deployment: DeploymentResponse, key: str) -> Any:
    """A registered field, in the form `_planned` gives the planned one."""
    if key == "concurrency_limit":
        limit = deployment.global_concurrency_limit
        return limit.limit if limit is not None else None
    if key == "schedules":
        return sorted(_schedule_key(s.schedule, s.active, s.parameters, s.slug)
                      for s in deployment.schedules)  # fmt: skip
    return _jsonable(getattr(deployment, key))


def _planned(fields: dict[str, Any], key: str) -> Any:
    if key == "schedules":
        return sorted(_schedule_key(s.schedule, s.active, s.parameters, s.slug)
                      for s in fields["schedules"])  # fmt: skip
    return _jsonable(fields[key])


def _schedule_key(schedule: Any, active: Any, parameters: Any, slug: Any) -> str:
    shape = {"schedule": schedule.model_dump(mode="json"), "active": active,
             "parameters": parameters or {}, "slug": slug}  # fmt: skip
    return json.dumps(shape, sort_keys=True)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value, default=str))
