"""The tests' own shape: what test modules share lives in tests/support/, never in another test
module or a conftest. Each rule also runs once on a small tree that breaks it, so it can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import imports_of_test_modules

ROOT = Path(__file__).resolve().parents[2]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


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
    root = _tree(
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
