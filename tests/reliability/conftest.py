"""The reliability record: every case in this tier writes one row of the record.

A test asks for the `reliability` fixture and calls `record(...)` with what it did, what it
expected and what it observed (numbers, not adjectives). The outcome column comes from pytest
itself, so a failing case shows as FAILED in the table instead of vanishing from it (a test that
fails before it records anything gets a FAILED row of its own). At the end
of the session the rows are written to build/reliability.md (or MLOPS_RELIABILITY_REPORT); the
tracked docs/RELIABILITY.md changes only by `python -m tests.support.record --publish`.
"""

from __future__ import annotations

import pytest

from tests.support.record import PUBLISH_COMMAND, UNRECORDED, CaseRecorder, Row, write_report

ROWS_KEY = pytest.StashKey[list[Row]]()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> CaseRecorder:
    recorder = CaseRecorder(request.node.nodeid)
    request.node.stash[ROWS_KEY] = recorder.rows
    return recorder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    rows = item.stash.get(ROWS_KEY, None)
    if rows == [] and report.failed:  # failed before recording: a row says so, not silence
        crash = getattr(report.longrepr, "reprcrash", None)
        observed = crash.message if crash else f"failed in {report.when}"
        rows.append(
            Row(UNRECORDED, item.name, "ran the test", "recorded cases", observed, item.nodeid)
        )
        rows[-1].outcome = "FAILED"
    if rows is not None and (report.when == "call" or report.failed):
        outcome = "passed" if report.passed else ("skipped" if report.skipped else "FAILED")
        for row in rows:
            if row.outcome != "FAILED":
                row.outcome = outcome
        _session_rows(item.session).extend(r for r in rows if r not in _session_rows(item.session))
    return report


SESSION_ROWS = pytest.StashKey[list[Row]]()


def _session_rows(session: pytest.Session) -> list[Row]:
    if SESSION_ROWS not in session.stash:
        session.stash[SESSION_ROWS] = []
    return session.stash[SESSION_ROWS]


REPORT_PATH = pytest.StashKey[str]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    rows = session.stash.get(SESSION_ROWS, [])
    if rows:
        path = write_report(rows, session.config.rootpath)
        failed = sum(row.outcome != "passed" for row in rows)
        session.config.stash[REPORT_PATH] = (
            f"{len(rows)} cases ({failed} not passed) → {path}; "
            f"to make it docs/RELIABILITY.md: {PUBLISH_COMMAND}"
        )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if REPORT_PATH in config.stash:
        terminalreporter.write_line(f"reliability record: {config.stash[REPORT_PATH]}")
