"""Register the loop with a Prefect server: work pools, deployments, automations — idempotently.

    python -m deployments.setup                                   # the local process pool
    python -m deployments.setup --target kubernetes --image REPO:TAG

against $PREFECT_API_URL. Deployments, their schedules and triggers come from prefect.yaml, on
the target's pool (deployments/register.py); what a deployment trigger cannot express is
created here as an automation, by name (deployments/automations.py). A second run with the
same arguments writes nothing: every object is compared first, and the summary says what was
created, updated or left alone.
"""

from __future__ import annotations

import argparse

from prefect import get_client

from deployments.automations import (
    CRASH_SILENT_RUNS,
    HEARTBEAT_S,
    ROLLBACK_ON_FAILED_ANALYSIS,
    ROLLBACK_ON_LIVE_FAILURE,
    ensure_automation,
    failover_automation,
    rollback_automation,
    silent_run_automation,
)
from deployments.changes import Change, SetupReport
from deployments.pools import K8S_TEMPLATE, ensure_pools
from deployments.register import ensure_deployment, plan
from deployments.specs import read_specs
from deployments.targets import (
    KUBERNETES_POOL,
    LOCAL_POOL,
    Target,
    kubernetes_target,
    local_target,
)
from deployments.triggers import ensure_triggers
from tasks.images import ImageRefused

__all__ = [
    "CRASH_SILENT_RUNS",
    "HEARTBEAT_S",
    "K8S_TEMPLATE",
    "KUBERNETES_POOL",
    "LOCAL_POOL",
    "ROLLBACK_ON_FAILED_ANALYSIS",
    "ROLLBACK_ON_LIVE_FAILURE",
    "ensure_automation",
    "failover_automation",
    "rollback_automation",
    "setup",
    "silent_run_automation",
]


def setup(target: Target | None = None) -> SetupReport:
    """Pools, then every deployment of prefect.yaml with its triggers, then the automations.

    prefect.yaml and the flows are read before anything is written, so a bad spec changes
    nothing on the server.
    """
    target = target or local_target()
    planned = [plan(spec, target) for spec in read_specs()]
    changes: list[Change] = ensure_pools(target)
    with get_client(sync_client=True) as client:
        for deployment in planned:
            deployment_id, change = ensure_deployment(client, deployment)
            triggers = ensure_triggers(client, deployment.spec, deployment.full_name, deployment_id)
            changes += [change] if triggers is None else [change, triggers]
    for automation in (rollback_automation, failover_automation, silent_run_automation):
        changes.append(ensure_automation(automation()))
    return SetupReport(target.name, target.image, tuple(changes))


def target_from(argv: list[str] | None = None) -> Target:
    """The target the command line names; exits with the reason on a refused image."""
    parser = argparse.ArgumentParser(prog="python -m deployments.setup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--target", choices=["local", "kubernetes"], default="local")
    parser.add_argument("--image", help="the flow image, REPO:TAG or REPO@sha256:… (kubernetes)")
    args = parser.parse_args(argv)
    if args.target == "local":
        if args.image:
            parser.error("--image is for --target kubernetes; the local pool runs this checkout")
        return local_target()
    if not args.image:
        parser.error("--target kubernetes needs --image REPO:TAG (the image CI built)")
    try:
        return kubernetes_target(args.image)
    except ImageRefused as refused:
        parser.error(str(refused))


if __name__ == "__main__":
    report = setup(target_from())
    print(report.summary())
