"""The automations a deployment trigger cannot express, created by name: exactly one of each.

They name deployments by their current id, so they are (re)made after the deployments.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect import get_client
from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, RunDeployment
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from deployments.changes import Change

ROLLBACK_ON_FAILED_ANALYSIS = "mlops: roll back when canary-analysis fails"
ROLLBACK_ON_LIVE_FAILURE = "mlops: roll back a canary the router took out"
CRASH_SILENT_RUNS = "mlops: a run that stopped heartbeating has crashed"
HEARTBEAT_S = 180  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY: Prefect 3.9 flow runs heartbeat this often


def _deployment_id(name: str) -> UUID:
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name).id


def rollback_automation() -> Automation:
    """If a canary-analysis run fails or crashes, roll back at once: never leave a canary unjudged."""
    analysis = _deployment_id("canary-analysis/canary-analysis")
    return Automation(
        name=ROLLBACK_ON_FAILED_ANALYSIS,
        description="A canary whose analysis failed gets no more traffic.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match_related={"prefect.resource.id": f"prefect.deployment.{analysis}"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=_deployment_id("rollback/rollback"),
                # Only a canary (an analysis may fail because its canary is already gone), and
                # only of the model the failed analysis was judging.
                parameters={
                    "reason": "canary-analysis failed",
                    "canary_only": True,
                    "model_name": "{{ flow_run.parameters['model_name'] }}",
                },
            )
        ],
    )


def failover_automation() -> Automation:
    """When the model server takes a failing canary out of traffic, record the rollback."""
    return Automation(
        name=ROLLBACK_ON_LIVE_FAILURE,
        description="The router took a canary out (errors or NaN on live traffic): roll it back.",
        trigger=EventTrigger(
            expect={"mlops.serving.canary-failed"},
            match={"prefect.resource.id": "mlops.model.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=_deployment_id("rollback/rollback"),
                parameters={
                    "reason": "canary failed on live traffic: {{ event.payload.reason }}",
                    "model_name": "{{ event.resource['prefect.resource.name'] }}",
                    "canary_version": "{{ event.payload.version }}",
                },
            )
        ],
    )


def silent_run_automation(within_s: float = 3 * HEARTBEAT_S) -> Automation:
    """A run whose process died with its host stays Running for ever: mark it Crashed.

    Until then it holds its deployment's concurrency slot (a re-run of deploy waits, one of
    canary-analysis is cancelled) and, for an analysis, the rollback automation never fires.
    Prefect's documented zombie-run pattern, limited to this project's (tagged) runs.
    """
    return Automation(
        name=CRASH_SILENT_RUNS,
        description=f"No heartbeat nor state change of an mlops run for {within_s:.0f}s.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": "prefect.tag.mlops"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED, message=f"no heartbeat for {within_s:.0f}s: host lost?"
            )
        ],
    )


def ensure_automation(wanted: Automation) -> Change:
    """Create the automation, or bring the one of that name up to date: never a second copy,
    and no write at all when it already is as wanted."""
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(wanted.name)
        for duplicate in existing[1:]:
            client.delete_automation(duplicate.id)
    extra = f"{len(existing) - 1} duplicate(s) removed" if len(existing) > 1 else ""
    if not existing:
        wanted.create()
        return Change("automation", wanted.name, "created")
    if same_automation(existing[0], wanted) and not extra:
        return Change("automation", wanted.name, "unchanged")
    wanted.id = existing[0].id
    wanted.update()
    return Change("automation", wanted.name, "updated", extra)


def same_automation(existing: AutomationCore, wanted: AutomationCore) -> bool:
    """Equal in everything the server keeps (it does not return the owner, nor do we set ids)."""
    ignored = {"id", "owner_resource"}
    return existing.model_dump(exclude=ignored) == wanted.model_dump(exclude=ignored)
