"""Register the loop with a Prefect server: work pools, deployments, automations — idempotently.

    python -m deployments.setup            # against $PREFECT_API_URL; safe to run again

Deployments and their triggers come from prefect.yaml (`prefect --no-prompt deploy --all`);
what a deployment trigger cannot express is created here as an automation, by name, so that
running the set-up twice leaves exactly one of each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from prefect import get_client
from prefect.automations import Automation
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, RunDeployment
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_POOL = "mlops-local"
KUBERNETES_POOL = "mlops-kubernetes"
K8S_TEMPLATE = PROJECT_ROOT / "infra" / "prefect" / "kubernetes-base-job-template.json"
ROLLBACK_ON_FAILED_ANALYSIS = "mlops: roll back when canary-analysis fails"
ROLLBACK_ON_LIVE_FAILURE = "mlops: roll back a canary the router took out"
CRASH_SILENT_RUNS = "mlops: a run that stopped heartbeating has crashed"
HEARTBEAT_S = 180  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY: Prefect 3.9 flow runs heartbeat this often


def local_pool_template() -> dict:
    """The process pool's default job template, with the flow-run command of the local stack
    (infra/flow_run_launcher.py: one interpreter fewer per run than Prefect's default)."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    command = template["variables"]["properties"]["command"]
    command["default"] = f"{sys.executable} -m infra.flow_run_launcher"
    return template


def ensure_work_pools(with_kubernetes: bool = True) -> list[str]:
    """Create the process pool (and the Kubernetes pool, from infra/) when they are missing."""
    wanted = [(LOCAL_POOL, "process", local_pool_template())]
    if with_kubernetes and K8S_TEMPLATE.exists():
        wanted.append((KUBERNETES_POOL, "kubernetes", json.loads(K8S_TEMPLATE.read_text())))
    created = []
    with get_client(sync_client=True) as client:
        for name, kind, template in wanted:
            try:
                client.read_work_pool(name)
            except ObjectNotFound:
                client.create_work_pool(
                    WorkPoolCreate(name=name, type=kind, base_job_template=template or {})
                )
                created.append(name)
    return created


def deploy_all() -> None:
    """`prefect --no-prompt deploy --all` from the project root (prefect.yaml)."""
    prefect = Path(sys.executable).with_name("prefect")
    result = subprocess.run(
        [str(prefect), "--no-prompt", "deploy", "--all"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"prefect deploy failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _deployment_id(name: str):
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


def ensure_automation(wanted: Automation) -> str:
    """Create the automation, or bring the one of that name up to date: never a second copy."""
    try:
        existing = Automation.read(name=wanted.name)
    except ValueError:
        wanted.create()
        return "created"
    wanted.id = existing.id
    wanted.update()
    return "updated"


def setup(with_kubernetes: bool = True) -> dict[str, object]:
    pools = ensure_work_pools(with_kubernetes)
    deploy_all()
    return {
        "pools_created": pools,
        "rollback_automation": ensure_automation(rollback_automation()),
        "failover_automation": ensure_automation(failover_automation()),
        "silent_run_automation": ensure_automation(silent_run_automation()),
    }


if __name__ == "__main__":
    print(setup())
