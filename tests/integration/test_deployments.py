"""The local set-up (prefect.yaml's deployments and the automations) on a real Prefect server, twice."""

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client

from deployments.changes import SetupReport
from deployments.setup import (
    KUBERNETES_POOL,
    LOCAL_POOL,
    ROLLBACK_ON_FAILED_ANALYSIS,
    ROLLBACK_ON_LIVE_FAILURE,
    setup,
)
from tests.support.stack import remove_deployments_and_automations

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORKDIR_STEP = "prefect.deployments.steps.set_working_directory"

DEPLOYMENTS = {
    "ci-checks", "retrain", "deploy", "canary-analysis", "guard", "rollback", "drift-daily"
}  # fmt: skip


@pytest.fixture
def registered(prefect_server) -> Iterator[SetupReport]:
    """Set up twice (the second run's report); afterwards remove it all, so other tests' events
    trigger nothing."""
    try:
        setup()
        yield setup()
    finally:
        remove_deployments_and_automations()


def test_setup_twice_leaves_one_of_each(registered: SetupReport) -> None:
    assert not registered.changed, registered.summary()
    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
        automations = Counter(a.name for a in client.read_automations())
        pools = {p.name: p for p in client.read_work_pools()}
    assert set(deployments) >= DEPLOYMENTS
    assert all(deployments[name].work_pool_name == LOCAL_POOL for name in DEPLOYMENTS)
    triggered = [
        f"{name}__automation_1" for name in ("retrain", "deploy", "canary-analysis", "guard")
    ]
    owned = [ROLLBACK_ON_FAILED_ANALYSIS, ROLLBACK_ON_LIVE_FAILURE]
    assert all(automations[name] == 1 for name in [*triggered, *owned])
    retrain = deployments["retrain"]
    assert retrain.global_concurrency_limit.limit == 1  # one training at a time, none lost
    assert retrain.concurrency_options.collision_strategy.value == "ENQUEUE"
    analysis = deployments["canary-analysis"]  # one per model: its lease; several models at once
    assert analysis.global_concurrency_limit.limit == 4
    (schedule,) = deployments["drift-daily"].schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 6 * * *", "Europe/Berlin")
    assert pools[LOCAL_POOL].type == "process"
    assert all(
        d.pull_steps[0][WORKDIR_STEP]["directory"] == str(ROOT) for d in deployments.values()
    )
    template = pools[KUBERNETES_POOL].base_job_template
    assert template["variables"]["properties"]["namespace"]["default"] == "mlops"
