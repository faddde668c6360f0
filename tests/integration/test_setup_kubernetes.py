"""`python -m deployments.setup --target kubernetes --image …` against the real Prefect server.

No cluster and no worker: a `kubernetes` pool, deployments on it and automations are only
records on the server, which is what the set-up writes. prefect.yaml is read here with plain
YAML, not with the set-up's own reader, so the two can disagree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import get_client
from prefect.exceptions import ObjectNotFound

from deployments.setup import (
    CRASH_SILENT_RUNS,
    KUBERNETES_POOL,
    ROLLBACK_ON_FAILED_ANALYSIS,
    ROLLBACK_ON_LIVE_FAILURE,
    setup,
)
from deployments.targets import kubernetes_target
from tests.support.stack import remove_deployments_and_automations

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/example/selfheal:abc123"
NEXT_IMAGE = "ghcr.io/example/selfheal:def456"
WORKDIR = {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/prefect"}}
IMAGE_ENV = "MLOPS_IMAGE"  # Settings.image: flow runs, predictor and Kubeflow pods


def prefect_yaml() -> dict[str, dict[str, Any]]:
    return {
        d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }


def run_setup(*args: str) -> subprocess.CompletedProcess[str]:
    """The operator's and CI's command, in a fresh interpreter (the environment names the server)."""
    return subprocess.run([sys.executable, "-m", "deployments.setup", *args], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def remove_everything() -> None:
    remove_deployments_and_automations()
    with get_client(sync_client=True) as client, suppress(ObjectNotFound):
        client.delete_work_pool(KUBERNETES_POOL)


@pytest.fixture
def empty_server(prefect_server) -> Iterator[None]:
    """No deployment, automation or Kubernetes pool before the test, and none left after it."""
    remove_everything()
    try:
        yield
    finally:
        remove_everything()


def snapshot() -> dict[str, Any]:
    """Ids and update times of everything the set-up writes."""
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(KUBERNETES_POOL)
        return {
            "pool": (pool.id, pool.updated, pool.base_job_template),
            "deployments": sorted(_deployment_row(d) for d in client.read_deployments()),
            "automations": sorted((a.name, str(a.id)) for a in client.read_automations()),
        }


def _deployment_row(d) -> tuple:
    schedules = tuple(schedule.id for schedule in d.schedules)
    return (d.name, d.id, d.updated, d.work_pool_name, str(d.job_variables), schedules)


def runs_deployments(automation) -> list:
    return [
        action.deployment_id for action in automation.actions if action.type == "run-deployment"
    ]


def test_every_deployment_lands_on_the_kubernetes_pool_with_the_image(empty_server) -> None:
    result = run_setup("--target", "kubernetes", "--image", IMAGE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"set-up of the kubernetes target, image {IMAGE}: ")
    wanted = prefect_yaml()
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(KUBERNETES_POOL)
        deployments = {d.name: d for d in client.read_deployments()}
        automations = client.read_automations()
    assert pool.type == "kubernetes"
    properties = pool.base_job_template["variables"]["properties"]
    assert properties["image"]["default"] == IMAGE
    assert properties["namespace"]["default"] == "mlops"  # the rest is infra/'s template
    assert set(deployments) == set(wanted)
    for name, spec in wanted.items():
        deployment = deployments[name]
        assert deployment.work_pool_name == KUBERNETES_POOL, name
        # The flows hand the same build to the predictor and the Kubeflow pods (tasks/settings.py).
        assert deployment.job_variables == {"image": IMAGE, "env": {IMAGE_ENV: IMAGE}}, name
        assert deployment.pull_steps == [WORKDIR], name
        assert deployment.parameters == spec.get("parameters", {}), name
        assert deployment.entrypoint == spec["entrypoint"], name
        triggers = [a for a in automations if runs_deployments(a) == [deployment.id]
                    and a.name.startswith(f"{name}__automation_")]  # fmt: skip
        assert [sorted(a.trigger.expect) for a in triggers] == [
            sorted(t["expect"]) for t in spec.get("triggers", [])
        ], name
    (schedule,) = deployments["drift-daily"].schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 6 * * *", "Europe/Berlin")
    assert deployments["retrain"].concurrency_options.collision_strategy.value == "ENQUEUE"

    by_name = {a.name: a for a in automations}
    assert set(Counter(a.name for a in automations).values()) == {1}, "a duplicate"
    rollback, analysis = deployments["rollback"].id, deployments["canary-analysis"].id
    assert runs_deployments(by_name[ROLLBACK_ON_FAILED_ANALYSIS]) == [rollback]
    related = by_name[ROLLBACK_ON_FAILED_ANALYSIS].trigger.match_related
    assert related["prefect.resource.id"] in ([f"prefect.deployment.{analysis}"],
                                              f"prefect.deployment.{analysis}")  # fmt: skip
    assert runs_deployments(by_name[ROLLBACK_ON_LIVE_FAILURE]) == [rollback]
    assert by_name[CRASH_SILENT_RUNS].actions[0].type == "change-flow-run-state"


def test_a_second_run_with_the_same_image_changes_nothing(empty_server) -> None:
    first = setup(kubernetes_target(IMAGE))
    before = snapshot()
    again = setup(kubernetes_target(IMAGE))
    assert snapshot() == before
    assert first.changed and not again.changed, again.summary()
    assert set(again.outcomes("deployment").values()) == {"unchanged"}
    assert len(again.outcomes("deployment")) == len(prefect_yaml())
    # One automation per trigger in prefect.yaml, and the three of deployments/automations.py.
    assert len(before["automations"]) == 3 + sum(
        len(d.get("triggers", [])) for d in prefect_yaml().values()
    )


def test_a_new_image_updates_the_pool_and_the_deployments_in_place(empty_server) -> None:
    setup(kubernetes_target(IMAGE))
    before = snapshot()
    report = setup(kubernetes_target(NEXT_IMAGE))
    after = snapshot()
    assert report.outcomes("work pool") == {KUBERNETES_POOL: "updated"}
    assert set(report.outcomes("deployment").values()) == {"updated"}
    assert set(report.outcomes("triggers").values()) == {"unchanged"}
    assert after["pool"][0] == before["pool"][0]
    assert after["pool"][2]["variables"]["properties"]["image"]["default"] == NEXT_IMAGE
    assert [d[:2] for d in after["deployments"]] == [d[:2] for d in before["deployments"]]
    assert {d[4] for d in after["deployments"]} == {
        str({"image": NEXT_IMAGE, "env": {IMAGE_ENV: NEXT_IMAGE}})
    }
    assert after["automations"] == before["automations"]  # same ids: nothing re-created


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("ghcr.io/example/selfheal", "has no tag nor digest"),
        ("ghcr.io/example/selfheal:latest", "is tagged latest"),
    ],
)
def test_an_image_that_names_no_build_is_refused_before_anything_is_written(
    empty_server, image: str, problem: str
) -> None:
    result = run_setup("--target", "kubernetes", "--image", image)
    assert result.returncode == 2
    assert f"image {image!r} {problem}" in result.stderr
    assert "--image" in result.stderr.splitlines()[-1]  # the message says what sets it
    with get_client(sync_client=True) as client:
        assert client.read_deployments() == []
        assert client.read_automations() == []
        with pytest.raises(ObjectNotFound):
            client.read_work_pool(KUBERNETES_POOL)
