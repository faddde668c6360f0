"""The tests' own shape: every test file sits in a lane's folder, and what test modules share
lives in tests/support/, never in another test module or a conftest. Each rule also runs once on
something that breaks it, so it can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import imports_of_test_modules
from tests.support.lanes import LANES, lane_of
from tests.support.trees import write_tree

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    assert imports_of_test_modules(ROOT) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from tests.integration.test_flows import events_named\n", "tests.integration.test_flows"),
        ("from tests.conftest import settings_for\n", "tests.conftest"),
        (
            "def f():\n    from tests.integration import test_flows\n",
            "tests.integration.test_flows",
        ),
        ("import test_flows\n", "test_flows"),  # pytest's sys.path makes this importable too
        ("from . import conftest\n", "tests.reliability.conftest"),
    ],
)
def test_the_rule_catches_a_test_module_importing_another(
    tmp_path: Path, text: str, expected: str
) -> None:
    root = write_tree(
        tmp_path,
        {
            "tests/conftest.py": "import pytest\n",
            "tests/support/stack.py": "def events_named():\n    pass\n",
            "tests/integration/test_flows.py": "from tests.support.stack import events_named\n",
            "tests/reliability/__init__.py": "",
            "tests/reliability/conftest.py": "",
            "tests/reliability/test_bad.py": text,
        },
    )
    assert imports_of_test_modules(root) == [f"tests.reliability.test_bad imports {expected}"]


def test_every_test_file_is_in_one_lane_and_both_lanes_have_tests() -> None:
    lanes = {path: lane_of(path, TESTS) for path in TESTS.rglob("test_*.py")}
    assert set(lanes.values()) == {"fast", "slow"}
    assert {path.relative_to(TESTS).parts[0] for path in lanes} == set(LANES)


@pytest.mark.parametrize(
    ("path", "lane"),
    [
        ("unit/test_gate.py", "fast"),
        ("data/test_drift.py", "fast"),
        ("model/test_behaviour.py", "fast"),
        ("integration/test_flows.py", "slow"),
        ("reliability/sub/test_load.py", "slow"),
    ],
)
def test_the_folder_sets_the_lane(path: str, lane: str) -> None:
    assert lane_of(TESTS / path, TESTS) == lane


@pytest.mark.parametrize("path", ["test_top.py", "stray/test_x.py", "../flows/test_x.py"])
def test_a_test_outside_the_lanes_folders_has_no_lane(path: str) -> None:
    with pytest.raises(ValueError, match=r"in no lane|is not under"):
        lane_of(TESTS / path, TESTS)
