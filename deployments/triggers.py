"""A deployment's triggers from prefect.yaml, as the automations it owns: rewritten only when
they differ, so a second set-up keeps their ids and never makes a second copy."""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.events import DeploymentTriggerTypes
from prefect.events.schemas.automations import AutomationCore
from pydantic import TypeAdapter

from deployments.automations import same_automation
from deployments.changes import Change
from deployments.specs import DeploymentSpec

# Marks the automations made from a deployment's triggers, so that a later run finds them: the
# API says which automations name a deployment, not which ones it owns.
TRIGGER_TAG = "prefect.yaml trigger"


def ensure_triggers(
    client: SyncPrefectClient, spec: DeploymentSpec, full_name: str, deployment_id: UUID
) -> Change | None:
    """The triggers of deployment `full_name` as automations it owns: replaced only when they
    differ from what the server holds."""
    resource = f"prefect.deployment.{deployment_id}"
    wanted = trigger_automations(spec, deployment_id)
    held = [
        automation
        for automation in client.read_resource_related_automations(resource)
        if TRIGGER_TAG in automation.tags
    ]
    if not wanted and not held:
        return None
    if _same_automations(held, wanted):
        return Change("triggers", full_name, "unchanged", f"{len(wanted)} automation(s)")
    # Also drops the untagged ones `prefect deploy` made, which the API cannot tell apart.
    client.delete_resource_owned_automations(resource)
    for automation in wanted:
        client.create_automation(automation)
    outcome = "updated" if held else "created"
    return Change("triggers", full_name, outcome, f"{len(wanted)} automation(s)")


def trigger_automations(spec: DeploymentSpec, deployment_id: UUID) -> list[AutomationCore]:
    """The automations prefect.yaml's triggers of `spec` stand for, named as Prefect names them."""
    adapter: TypeAdapter[DeploymentTriggerTypes] = TypeAdapter(DeploymentTriggerTypes)
    automations = []
    for number, trigger_spec in enumerate(spec.triggers, start=1):
        named = {"name": f"{spec.name}__automation_{number}", **trigger_spec}
        trigger = adapter.validate_python(named)
        trigger.set_deployment_id(deployment_id)
        automation = trigger.as_automation()
        automation.tags = [*automation.tags, TRIGGER_TAG]
        automations.append(automation)
    return automations


def _same_automations(held: list[AutomationCore], wanted: list[AutomationCore]) -> bool:
    if len(held) != len(wanted):
        return False
    by_name = sorted(held, key=lambda a: a.name), sorted(wanted, key=lambda a: a.name)
    return all(same_automation(h, w) for h, w in zip(*by_name, strict=True))
