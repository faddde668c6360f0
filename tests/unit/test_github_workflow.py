"""The GitHub Actions workflow: structure, triggers, secrets by reference, the README's command.

No copy of GitHub's workflow JSON schema ships in an installed package, so `WORKFLOW_SCHEMA`
below is the subset of it this workflow uses (keys GitHub accepts for a workflow, a job and a
step; unknown keys are refused), checked with jsonschema, plus the project's own rules.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from deployments.targets import kubernetes_target

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "mlops-ci-cd.yml"
README = PROJECT_ROOT / "README.md"
CI_RUN = PROJECT_ROOT / ".ci" / "run"
CURRENT_MAJOR = {
    "actions/checkout": 4,
    "actions/setup-python": 5,
    "actions/setup-node": 4,
    "astral-sh/setup-uv": 6,
}

STEP = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        key: {}
        for key in (
            "id",
            "if",
            "name",
            "uses",
            "run",
            "with",
            "env",
            "shell",
            "working-directory",
            "continue-on-error",
            "timeout-minutes",
        )
    },
    "oneOf": [{"required": ["uses"]}, {"required": ["run"]}],
}
JOB = {
    "type": "object",
    "additionalProperties": False,
    "required": ["runs-on", "steps", "timeout-minutes"],
    "properties": {
        "name": {"type": "string"},
        "needs": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "if": {"type": "string"},
        "runs-on": {"type": "string"},
        "timeout-minutes": {"type": "integer", "minimum": 1, "maximum": 90},
        "environment": {},
        "concurrency": {},
        "permissions": {"type": "object"},
        "env": {"type": "object"},
        "strategy": {"type": "object"},
        "steps": {"type": "array", "minItems": 1, "items": STEP},
    },
}
WORKFLOW_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "on", "jobs"],
    "properties": {
        "name": {"type": "string"},
        "on": {"type": "object"},
        "permissions": {"type": "object"},
        "env": {"type": "object"},
        "concurrency": {},
        "jobs": {
            "type": "object",
            "patternProperties": {"^[A-Za-z_][A-Za-z0-9_-]*$": JOB},
            "additionalProperties": False,
        },
    },
}


def workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    if True in doc:  # YAML 1.1 reads the bare key `on` as true
        doc["on"] = doc.pop(True)
    return doc


def steps(job: str) -> list[dict[str, Any]]:
    return workflow()["jobs"][job]["steps"]


def runs(job: str) -> list[str]:
    return [step["run"].strip() for step in steps(job) if "run" in step]


def uses(job: str) -> list[str]:
    return [step["uses"] for step in steps(job) if "uses" in step]


def readme_test_command() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return blocks[1].strip()


def test_the_workflow_parses_and_fits_the_schema() -> None:
    errors = [
        e.message for e in jsonschema.Draft7Validator(WORKFLOW_SCHEMA).iter_errors(workflow())
    ]
    assert not errors, errors


def test_the_schema_refuses_a_misspelt_key() -> None:
    broken = workflow()
    broken["jobs"]["test"]["step"] = broken["jobs"]["test"].pop("steps")
    assert list(jsonschema.Draft7Validator(WORKFLOW_SCHEMA).iter_errors(broken))


def test_triggers_and_default_permissions() -> None:
    doc = workflow()
    assert set(doc["on"]["push"]["branches"]) == {"main", "develop"}
    assert doc["on"]["pull_request"]["branches"] == ["main"]
    assert doc["permissions"] == {"contents": "read"}


def test_jobs_and_their_order() -> None:
    jobs = workflow()["jobs"]
    assert {"lint", "test", "deploy"} <= set(jobs)
    assert set(jobs["deploy"]["needs"]) == {"lint", "test"}
    assert "needs" not in jobs["lint"] and "needs" not in jobs["test"]
    assert "if" not in jobs["lint"] and "if" not in jobs["test"]


def test_lint_runs_ruff_from_the_lock() -> None:
    commands = runs("lint")
    assert "uv run --locked ruff check ." in commands
    assert "uv run --locked ruff format --check ." in commands
    assert "uv lock --check" in commands


def test_the_test_job_runs_exactly_the_readme_test_command() -> None:
    command = readme_test_command()
    assert "pytest" in command
    assert command in runs("test")
    python = [
        s["with"]["python-version"] for s in steps("test") if "setup-python" in s.get("uses", "")
    ]
    assert python == ["3.11"]
    assert any(u.startswith("actions/setup-node@") for u in uses("test")), "MinIO comes from npm"


def test_the_readme_test_command_runs_the_fast_lane_then_the_slow_one_as_ci_run_does() -> None:
    command = readme_test_command()
    assert command.index("pytest -m fast &&") < command.index("pytest -m slow")
    assert CI_RUN.read_text().strip().splitlines()[-1] == command


def test_deploy_runs_only_on_pushes_to_main_one_at_a_time() -> None:
    deploy = workflow()["jobs"]["deploy"]
    condition = deploy["if"].replace(" ", "")
    assert "github.ref=='refs/heads/main'" in condition
    assert "github.event_name=='push'" in condition
    assert deploy["concurrency"]["group"]
    assert deploy["concurrency"].get("cancel-in-progress") is False
    assert deploy["permissions"].get("contents") == "read"
    assert set(deploy["permissions"]) <= {"contents", "packages"}


def test_prefect_credentials_are_secrets_by_reference_in_the_deploy_job_only() -> None:
    doc = workflow()
    (step,) = [s for s in steps("deploy") if "deployments.setup" in s.get("run", "")]
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY"):
        assert step["env"][name] == "${{ secrets." + name + " }}"
    for job_name, job in doc["jobs"].items():
        if job_name != "deploy":
            assert "secrets.PREFECT" not in yaml.safe_dump(job), job_name
    text = WORKFLOW.read_text()
    assert not re.search(r"pnu_[A-Za-z0-9]{10,}", text), "a literal Prefect API key"
    assert not re.search(r"https?://[^\s'\"]*(/api|prefect)", text), "a literal Prefect API URL"


def test_deploy_runs_the_kubernetes_setup_with_the_image_it_built() -> None:
    (step,) = [s for s in steps("deploy") if "deployments.setup" in s.get("run", "")]
    (command,) = [line for line in step["run"].splitlines() if "deployments.setup" in line]
    assert command.startswith("uv run --locked --no-dev python -m deployments.setup ")
    args = shlex.split(command.split("python -m deployments.setup", 1)[1])
    assert args == ["--target", "kubernetes", "--image", "$IMAGE@$IMAGE_DIGEST"]
    # No per-deployment `prefect deploy` left beside it: it would re-create the triggers.
    assert not [r for r in runs("deploy") if "prefect --no-prompt deploy" in r or "--pool" in r]
    (build,) = [s for s in steps("deploy") if s.get("uses", "").startswith("docker/build-push")]
    assert build["with"]["file"] == "infra/Dockerfile"
    assert build["with"]["push"] is True
    assert "${{ env.IMAGE }}" in build["with"]["tags"]
    assert step["env"]["IMAGE_DIGEST"] == "${{ steps." + build["id"] + ".outputs.digest }}"
    image = workflow()["jobs"]["deploy"]["env"]["IMAGE"]
    assert "${{ github.sha }}" in image
    # What the command receives once GitHub has filled in the sha and the digest is accepted.
    built = image.replace("${{ github.sha }}", "0" * 40) + "@sha256:" + "1" * 64
    assert kubernetes_target(built).image == built
    assert steps("deploy").index(build) < steps("deploy").index(step)


def test_every_action_is_pinned_to_a_version_or_a_commit() -> None:
    every = [u for job in workflow()["jobs"] for u in uses(job)]
    assert every
    for ref in every:
        match = re.fullmatch(r"([\w.-]+/[\w./-]+)@(v(\d+)(\.\d+){0,2}|[0-9a-f]{40})", ref)
        assert match, f"{ref} is not pinned to vN[.N[.N]] or a commit SHA"
        action, major = match[1], match[3]
        if action in CURRENT_MAJOR and major is not None:
            assert int(major) >= CURRENT_MAJOR[action], (
                f"{ref} is older than v{CURRENT_MAJOR[action]}"
            )


def test_a_secret_scan_runs() -> None:
    assert any("trufflehog" in u or "gitleaks" in u for u in uses("lint"))
    (checkout,) = [s for s in steps("lint") if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0
