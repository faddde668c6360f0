"""Every project path a document or a comment names exists: nothing refers to a module that moved."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.trees import git_tree, tracked_files

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = "flows|tasks|infra|deployments|bench|tests"
# A path such as tasks/registry/versions.py or infra/k8s/flows.yaml, and `python -m pkg.module`.
PATH = re.compile(rf"(?<![\w/.-])((?:{PACKAGES})/[\w./-]*\w)")
MODULE = re.compile(rf"python -m ((?:{PACKAGES})(?:\.\w+)+)")
SKIP = {"uv.lock", "docs/RELIABILITY.md"}  # a lock file; a dated record of one CI run
FIXTURE_TREES = "tests/unit/"  # unit tests build small temporary trees with made-up paths


def named_paths(text: str) -> set[str]:
    paths = {match.rstrip(".") for match in PATH.findall(text)}
    modules = {name.replace(".", "/") + ".py" for name in MODULE.findall(text)}
    return {p for p in paths if "." in Path(p).name or p.endswith("/")} | modules


def missing_paths(root: Path) -> dict[str, list[str]]:
    missing = {}
    for name in tracked_files(root):
        path = root / name
        if name in SKIP or name.startswith(FIXTURE_TREES) or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        gone = sorted(p for p in named_paths(text) if not (root / p).exists() and "*" not in p)
        if gone:
            missing[name] = gone
    return missing


def test_every_named_path_exists() -> None:
    assert missing_paths(ROOT) == {}


def test_a_moved_module_is_caught(tmp_path: Path) -> None:
    text = "see tasks/here.py, tasks/serving.py and `python -m tasks.gone`\n"
    git_tree(tmp_path, {"tasks/here.py": "", "README.md": text})
    assert missing_paths(tmp_path) == {"README.md": ["tasks/gone.py", "tasks/serving.py"]}
