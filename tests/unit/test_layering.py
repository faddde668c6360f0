"""The shape of the code: no import cycles, pure decisions, light flows.

The graph is read from source (tests/support/imports.py), function-level imports included.
Each rule is also run once on a small tree that breaks it, so the rule itself can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.imports import cycles, external_imports, import_graph, project_modules
from tests.support.trees import write_tree

ROOT = Path(__file__).resolve().parents[2]
# What a decision may not touch: orchestration, HTTP, S3, Kubernetes, KFP, Evidently, servers.
FORBIDDEN_IN_DECISIONS = frozenset(
    {"prefect", "httpx", "requests", "urllib3", "minio", "boto3", "botocore", "kubernetes",
     "kfp", "evidently", "kserve", "fastapi", "uvicorn", "socket", "subprocess", "joblib"}
)  # fmt: skip
HEAVY = ("sklearn", "pandera", "evidently", "kfp")


def decision_violations(root: Path) -> list[str]:
    """Each module of tasks/decisions that imports something it must not, with what."""
    found = []
    graph = import_graph(root)
    for module in project_modules(root, ["tasks"]):
        if not module.startswith("tasks.decisions"):
            continue
        bad = sorted(external_imports(root, module) & FORBIDDEN_IN_DECISIONS)
        bad += sorted(m for m in graph[module] if not m.startswith("tasks.decisions"))
        if bad:
            found.append(f"{module} imports {', '.join(bad)}")
    return found


def test_the_project_has_no_import_cycle() -> None:
    assert cycles(import_graph(ROOT)) == []


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "tasks/__init__.py": "",
            "tasks/a.py": "from tasks.b import thing\n",
            "tasks/b.py": "def thing():\n    from tasks.a import other\n",
            "tasks/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from tasks.a import x\n",
        },
    )
    assert cycles(import_graph(root)) == [["tasks.a", "tasks.b"]]


def test_decisions_import_no_client_no_prefect_and_nothing_outside_decisions() -> None:
    assert decision_violations(ROOT) == []
    assert len(project_modules(ROOT, ["tasks/decisions"])) >= 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("import prefect\n", "prefect"),
        ("def f():\n    from evidently import Report\n", "evidently"),
        ("from tasks.s3 import connect\n", "tasks.s3"),
    ],
)
def test_the_purity_rule_catches_a_forbidden_import(
    tmp_path: Path, text: str, expected: str
) -> None:
    root = write_tree(
        tmp_path,
        {
            "tasks/__init__.py": "",
            "tasks/s3.py": "",
            "tasks/decisions/__init__.py": "",
            "tasks/decisions/gate.py": "import math\n",
            "tasks/decisions/bad.py": text,
        },
    )
    assert decision_violations(root) == [f"tasks.decisions.bad imports {expected}"]


def _loaded_after_import(*modules: str) -> list[str]:
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_flows_that_move_traffic_import_no_training_stack() -> None:
    assert _loaded_after_import("flows.deploy", "flows.rollback", "flows.canary_analysis") == []


def test_retrain_imports_kfp_only_when_it_submits() -> None:
    assert "kfp" not in _loaded_after_import("flows.retrain")


def test_training_flows_load_their_stack_only_once_running() -> None:
    """A worker's fresh process reports the run Running after importing the flow module."""
    assert _loaded_after_import("flows.retrain", "flows.ci_checks") == []


def test_the_light_flow_check_sees_a_heavy_import() -> None:
    assert _loaded_after_import("sklearn") == ["sklearn"]
