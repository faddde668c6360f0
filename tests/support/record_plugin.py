"""The reliability record's pytest hooks: every case in the reliability tier writes one row.

A test asks for the `reliability` fixture and calls it with what it did, what it expected and
what it observed (numbers, not adjectives). The outcome column comes from pytest itself, so a
failing case shows as FAILED in the table instead of vanishing from it (a test that fails before
it records anything gets a FAILED row of its own). Rows travel on the test reports
(`user_properties`), so they reach the process that writes the record whether the tests ran in
it or in pytest-xdist workers. At the end of the session they are written to
build/reliability.md (or MLOPS_RELIABILITY_REPORT); the tracked docs/RELIABILITY.md changes only
by `python -m tests.support.record --publish`.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from tests.support.record import PUBLISH_COMMAND, UNRECORDED, CaseRecorder, Row, write_report

ROWS_KEY = pytest.StashKey[list[Row]]()
ROWS_PROPERTY = "reliability_rows"
COLLECTED = pytest.StashKey[dict[tuple[str, str], Row]]()
REPORT_PATH = pytest.StashKey[str]()


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
        report.user_properties.append((ROWS_PROPERTY, [asdict(row) for row in rows]))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Runs where the record is written: in the one process, or in xdist's controller."""
    if not _CONFIG:
        return
    config = _CONFIG[-1]
    collected = config.stash.setdefault(COLLECTED, {})
    for name, rows in report.user_properties:
        if name == ROWS_PROPERTY:
            for row in rows:  # a later report of the same case (a failed teardown) wins
                collected[(row["test"], row["case"])] = Row(**row)


_CONFIG: list[pytest.Config] = []  # logreport hooks get no config: the session's, kept here


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG.append(config)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: its controller writes
        return
    rows = list(session.config.stash.get(COLLECTED, {}).values())
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
