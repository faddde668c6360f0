"""The whole loop through events and automations, as the main job plays it.

Real SeaweedFS, a real Prefect server with every deployment and automation from prefect.yaml and
deployments/, a real process worker, the real KServe model server, simulated users. The test
only plays the world (data, traffic, a daily check run now, a bad model slipping through);
retrain, deploy, canary analysis, promotion and rollback all start from events.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from flows.scenario.own_data import CLASSIFIER_MODEL, USER_MODEL
from flows.scenario.play import Scenario, play
from flows.scenario.world import World
from infra.local_stack import local_stack
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.configs import read_config
from tasks.registry.datasets import read_snapshot
from tasks.registry.versions import open_registry
from tasks.settings import Settings, get_settings
from tests.support.stack import remove_deployments_and_automations

pytestmark = pytest.mark.integration


def runs_of(deployment: str, model: str) -> list:
    """This model's runs of a deployment (other tests share the Prefect server)."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment]))
        )
    return [run for run in runs if run.parameters.get("model_name") == model]


@pytest.fixture
def leaves_nothing_registered(prefect_server) -> Iterator[None]:
    """The stack registers every deployment and automation: remove them afterwards."""
    try:
        yield
    finally:
        remove_deployments_and_automations()


def test_drift_retrain_canary_promotion_bad_model_rollback_and_guard(
    flow_env: Settings, tmp_path: Path, leaves_nothing_registered, monkeypatch
) -> None:
    # A bucket of its own, as the main job has: drift-daily checks every model in the registry
    # with a champion, and the session's bucket holds every other test's models.
    monkeypatch.setenv("MLOPS_BUCKET", f"loop-{flow_env.model_name.removeprefix('m-')}")
    with local_stack(runtime_dir=tmp_path) as stack:
        world = World.from_environment(stack.serving_url, 3000, stack.add_model_server)
        scenario = Scenario(world, timeout_s=240)
        play(scenario)
        world = scenario.world
        registry = world.registry
        routing = world.served()

    assert [step.ok for step in scenario.steps] == [True] * 9
    # A burst of five drift events started exactly one retrain, and no other run at all.
    drift_runs = [
        r
        for r in runs_of("retrain", flow_env.model_name)
        if r.created_by and r.created_by.type == "AUTOMATION"
    ]
    assert [r.state.name for r in drift_runs] == ["Completed"]
    (retrained,) = drift_runs
    assert retrained.parameters["reason"].startswith("drift: ")
    assert retrained.parameters["data"] is None  # nobody handed it a batch: labelled traffic
    # v2 learned from traffic: its snapshot's traffic rows are logged requests, with their labels.
    v2 = registry.manifest(2).data
    snapshot = read_snapshot(registry.store, v2.source, v2.digest)
    traffic = snapshot[snapshot["origin"] == "traffic"]
    logged = read_serving_logs(registry.store, world.model, datetime.now(UTC) - timedelta(hours=1),
                               datetime.now(UTC))  # fmt: skip
    assert len(traffic) >= 500 and set(traffic["request_id"]) <= set(logged["request_id"])
    assert (snapshot["origin"] == "reference").sum() <= len(traffic)
    # Champion alias, served version and alias history agree; v3 is gone from traffic.
    assert registry.alias("champion") == routing["stable_version"] == 2
    assert routing["canary_version"] is None and registry.alias("canary") is None
    moves = [(m.alias, m.from_version, m.to_version) for m in registry.history()]
    assert ("champion", 1, 2) in moves and ("canary", 3, None) in moves
    assert ("champion", 2, 3) not in moves
    assert sum(report.failed for report in world.traffic_reports) == 0
    analysis = runs_of("canary-analysis", flow_env.model_name)
    assert len(analysis) == 3 and all(r.created_by.type == "AUTOMATION" for r in analysis)
    # v4 was promoted without labels; the guard, started by the promotion event, put v2 back.
    assert ("champion", 2, 4) in moves and ("champion", 4, 2) in moves
    back = [m for m in registry.history() if (m.alias, m.from_version) == ("champion", 4)][-1]
    assert back.reason.startswith("rolled back: guard: ") and "worse" in back.reason
    guards = runs_of("guard", flow_env.model_name)
    assert {r.parameters["version"] for r in guards} == {2, 4}
    assert all(r.created_by.type == "AUTOMATION" for r in guards)
    # A second model from a user's CSV: its inferred configuration stored, its checks passed.
    assert [r.state.name for r in runs_of("ci-checks", USER_MODEL)] == ["Completed"]
    stored = read_config(open_registry(get_settings(model_name=USER_MODEL)))
    assert stored.contract.target.name == "target" and len(stored.contract.columns) == 10
    # A classifier from a user's CSV, deployed by the registered event to a server of its own
    # (found by its record), while the house-price server kept its champion.
    classifier = open_registry(get_settings(model_name=CLASSIFIER_MODEL))
    assert classifier.aliases() == {"champion": 1}
    assert classifier.manifest(1).classes == ["benign", "malignant"]
    (deployed,) = runs_of("deploy", CLASSIFIER_MODEL)
    assert deployed.created_by.type == "AUTOMATION" and deployed.state.name == "Completed"
    assert "P(benign)=" in scenario.steps[-1].detail and routing["stable_version"] == 2
