"""The set-up's pure parts: its targets, how it reads prefect.yaml, and its summary. Which image
references it accepts is tasks/images.py's check (tests/unit/test_images.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from deployments.changes import Change, SetupReport
from deployments.specs import parse_specs, read_specs
from deployments.targets import IMAGE_WORKDIR, KUBERNETES_POOL, kubernetes_target, local_target
from tasks.images import ImageRefused
from tasks.settings import known_variables

ROOT = Path(__file__).resolve().parents[2]


def test_the_kubernetes_target_runs_the_image_from_its_workdir() -> None:
    target = kubernetes_target("ghcr.io/example/selfheal:abc123")
    assert (target.pool, target.working_directory) == (KUBERNETES_POOL, IMAGE_WORKDIR)
    assert target.job_variables == {
        "image": "ghcr.io/example/selfheal:abc123",
        "env": {"MLOPS_IMAGE": "ghcr.io/example/selfheal:abc123"},  # Settings.image
    }
    assert set(target.job_variables["env"]) <= known_variables()  # each one a setting
    assert local_target().working_directory == str(ROOT) and local_target().image is None
    with pytest.raises(ImageRefused, match="is tagged latest"):
        kubernetes_target("ghcr.io/example/selfheal:latest")


def test_the_image_workdir_is_where_the_dockerfile_puts_the_code() -> None:
    workdirs = [line.split()[1] for line in (ROOT / "infra" / "Dockerfile").read_text().splitlines()
                if line.startswith("WORKDIR ")]  # fmt: skip
    assert workdirs == [IMAGE_WORKDIR]


def test_prefect_yaml_reads_into_every_deployment() -> None:
    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    specs = read_specs()
    assert [spec.name for spec in specs] == [d["name"] for d in raw]
    by_name = {spec.name: spec for spec in specs}
    assert by_name["retrain"].concurrency_limit.collision_strategy == "ENQUEUE"
    assert by_name["drift-daily"].schedules[0].cron == "0 6 * * *"
    assert len(by_name["retrain"].triggers) == 1


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda doc: doc.update(pull=[{"prefect.deployments.steps.git_clone": {}}]), "pull"),
        (lambda doc: doc["deployments"][0].update(sla=[]), "sla"),
        (lambda doc: doc["deployments"][-1]["schedules"][0].update(day_or=False), "day_or"),
    ],
)
def test_a_key_the_setup_would_ignore_is_refused(change, where: str) -> None:
    document = copy.deepcopy(yaml.safe_load((ROOT / "prefect.yaml").read_text()))
    change(document)
    with pytest.raises(ValidationError, match=where):
        parse_specs(document)


def test_a_deployment_named_twice_is_refused() -> None:
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    document["deployments"].append(copy.deepcopy(document["deployments"][0]))
    with pytest.raises(ValueError, match="twice: ci-checks"):
        parse_specs(document)


def test_the_summary_counts_and_lists_every_outcome() -> None:
    report = SetupReport(
        "kubernetes",
        "r:t",
        (
            Change("work pool", KUBERNETES_POOL, "updated", "default image a -> b"),
            Change("deployment", "retrain/retrain", "unchanged"),
            Change("automation", "x", "created"),
        ),
    )
    lines = report.summary().splitlines()
    assert (
        lines[0] == "set-up of the kubernetes target, image r:t: 1 created, 1 updated, 1 unchanged"
    )
    assert lines[1].split() == ["updated", "work", "pool", KUBERNETES_POOL, "(default", "image",
                                "a", "->", "b)"]  # fmt: skip
    assert report.changed and report.outcomes("deployment") == {"retrain/retrain": "unchanged"}
    assert not SetupReport("local", None, report.changes[1:2]).changed
