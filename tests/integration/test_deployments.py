"""`prefect --no-prompt deploy --all` and the automations, against a real Prefect server, twice."""

from collections import Counter
from collections.abc import Iterator

import pytest
from prefect import get_client

from deployments.setup import (
    KUBERNETES_POOL,
    LOCAL_POOL,
    ROLLBACK_ON_FAILED_ANALYSIS,
    ROLLBACK_ON_LIVE_FAILURE,
    setup,
)
from tests.support.stack import remove_deployments_and_automations

pytestmark = pytest.mark.integration

DEPLOYMENTS = {
    "ci-checks", "retrain", "deploy", "canary-analysis", "guard", "rollback", "drift-daily"
}  # fmt: skip


@pytest.fixture
def registered(prefect_server) -> Iterator[None]:
    """Set up twice; afterwards remove it all, so other tests' events trigger nothing."""
    try:
        setup()
        setup()
        yield
    finally:
        remove_deployments_and_automations()


def test_setup_twice_leaves_one_of_each(registered) -> None:
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
    assert retrain.global_concurrency_limit.limit == 1
    assert retrain.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    (schedule,) = deployments["drift-daily"].schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 6 * * *", "Europe/Berlin")
    assert pools[LOCAL_POOL].type == "process"
    template = pools[KUBERNETES_POOL].base_job_template
    assert template["variables"]["properties"]["namespace"]["default"] == "mlops"
