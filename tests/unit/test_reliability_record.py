"""The reliability record: a test run writes build/reliability.md; only --publish writes
docs/RELIABILITY.md, and the published file says how it is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.record import (
    PUBLISH_COMMAND,
    UNRECORDED,
    Row,
    main,
    publish,
    render,
    write_report,
)

ROOT = Path(__file__).resolve().parents[2]


def _row(outcome: str = "passed") -> Row:
    return Row("load", "a case", "did", "expected", "observed", "tests/x.py::test_x", outcome)


@pytest.fixture(autouse=True)
def _default_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_RELIABILITY_REPORT", raising=False)


def test_a_run_writes_the_build_record_and_leaves_docs_alone(tmp_path: Path) -> None:
    written = write_report([_row(), _row("FAILED")], tmp_path)
    assert written == tmp_path / "build" / "reliability.md"
    assert "- cases: 2, not passed: 1" in written.read_text()
    assert not (tmp_path / "docs").exists()


def test_publish_copies_the_last_record_to_docs(tmp_path: Path) -> None:
    written = write_report([_row()], tmp_path)
    message = publish(tmp_path)
    assert (tmp_path / "docs" / "RELIABILITY.md").read_text() == written.read_text()
    assert "1 cases, not passed: 0" in message


def test_publish_without_a_record_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pytest -m slow"):
        publish(tmp_path)
    assert not (tmp_path / "docs").exists()


def test_the_command_without_publish_only_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("MLOPS_RELIABILITY_REPORT", str(tmp_path / "elsewhere.md"))
    assert main([]) == 1
    write_report([_row()], tmp_path)
    assert main([]) == 0
    assert "1 cases, not passed: 0" in capsys.readouterr().out


def test_the_published_record_and_the_readme_say_how_it_is_made() -> None:
    published = (ROOT / "docs" / "RELIABILITY.md").read_text()
    assert published.split("- run:")[0] == render([], ROOT).split("- run:")[0]
    assert PUBLISH_COMMAND in " ".join(published.split())
    assert PUBLISH_COMMAND in " ".join((ROOT / "README.md").read_text().split())


def test_a_case_that_failed_before_recording_is_counted_and_listed(tmp_path: Path) -> None:
    lost = Row(
        UNRECORDED, "test_x[case]", "the test", "its rows", "ValueError: boom", "t", "FAILED"
    )
    text = render([_row(), lost], tmp_path)
    assert "- cases: 2, not passed: 1" in text
    assert f"## {UNRECORDED[0].upper()}{UNRECORDED[1:]}" in text and "ValueError: boom" in text
