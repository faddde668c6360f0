"""The repository is self-contained: no test, flow or task reads a file outside the checkout.

A GitHub checkout has nothing beside it; reference data the tests need (KServe's CRD) is
vendored under infra/crds/ with its source noted.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.trees import git_tree, tracked_files

ROOT = Path(__file__).resolve().parents[2]
SELF = "tests/unit/test_self_contained.py"  # its own patterns and test trees name such paths
# A path joined with ".." or "shared" (`ROOT / ".." / ...`), or a literal "../shared".
OUTSIDE = re.compile(r"""/\s*["'](?:\.\.|shared)["']|["'](?:\.\.|shared)["']\s*/|\.\./shared""")


def reads_outside(root: Path) -> dict[str, list[str]]:
    found = {}
    for name in tracked_files(root, "*.py"):
        if name == SELF:
            continue
        hits = [line.strip() for line in (root / name).read_text().splitlines()
                if OUTSIDE.search(line) and "noqa: outside" not in line]  # fmt: skip
        if hits:
            found[name] = hits
    return found


def test_no_python_file_reaches_outside_the_checkout() -> None:
    assert reads_outside(ROOT) == {}


def test_the_check_sees_a_path_out_of_the_checkout(tmp_path: Path) -> None:
    files = {
        "a.py": 'CRD = ROOT / ".." / "shared" / "kserve"\n',
        "b.py": 'open("../shared/kserve/crd.yaml")\n',
        "c.py": 'CRD = ROOT / "infra" / "crds"\n',
    }
    assert sorted(reads_outside(git_tree(tmp_path, files))) == ["a.py", "b.py"]


def test_the_vendored_crd_names_its_source() -> None:
    readme = (ROOT / "infra" / "crds" / "kserve" / "README.md").read_text()
    assert re.search(r"commit\s+[0-9a-f]{40}", readme) and "kserve/kserve" in readme
    assert (
        ROOT / "infra" / "crds" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
    ).is_file()
