"""Shared fixtures: real S3 servers and a real Prefect server, started once per session.

Fixtures and hooks only; the helpers tests share live in tests/support/, and a test module
imports from there, never from another test module or from a conftest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Plain asserts in the shared helpers report their values, as they do in a test.
pytest.register_assert_rewrite("tests.support")

from infra.local_s3 import S3Server, start_s3_server  # noqa: E402
from infra.local_stack import environment  # noqa: E402
from infra.prefect_server import PrefectServer, prefect_session  # noqa: E402
from tasks.data.contract import DataContract, load_contract  # noqa: E402
from tasks.settings import DEFAULT_CONTRACT, Settings, get_settings  # noqa: E402
from tests.support.keys import TEST_KEY_HEX  # noqa: E402
from tests.support.lanes import LANE_MARKERS, lane_of  # noqa: E402
from tests.support.models import HouseModels  # noqa: E402

# The served champion the bad-input modules of tests/reliability share (`bad_input_world`).
pytest_plugins = ["tests.support.bad_world", "tests.support.record_plugin"]
TESTS = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    """Signatures on, as in production: every process the tests start signs and verifies with
    the session's key (a test about a missing key removes it with monkeypatch)."""
    os.environ["MLOPS_MANIFEST_KEY"] = TEST_KEY_HEX
    os.environ.pop("MLOPS_ALLOW_UNSIGNED", None)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test `fast` or `slow` by its folder (tests/support/lanes.py)."""
    problems = []
    for item in items:
        by_hand = sorted({mark.name for mark in item.iter_markers()} & LANE_MARKERS)
        if by_hand:
            problems.append(f"{item.nodeid} is marked {by_hand} by hand; its folder sets its lane")
            continue
        try:
            item.add_marker(lane_of(item.path, TESTS))
        except ValueError as error:
            problems.append(f"{item.nodeid}: {error}")
    if problems:
        raise pytest.UsageError("tests without a lane:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def contract() -> DataContract:
    return load_contract(DEFAULT_CONTRACT)


@pytest.fixture(scope="session")
def house_models(contract: DataContract) -> HouseModels:
    """Small real models, each trained once per session, for tests that register and serve them
    and do not need a freshly trained one (tests/support/models.py)."""
    return HouseModels(contract)


@pytest.fixture(scope="session", params=["seaweedfs", "minio"])
def any_s3_server(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    """Each registry test runs against SeaweedFS and against MinIO (what production uses)."""
    server = start_s3_server(request.param)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One SeaweedFS server for the flow tests."""
    server = start_s3_server("seaweedfs")
    yield server
    server.stop()


@pytest.fixture
def model_name() -> str:
    """A fresh model name per test, so tests sharing a server never see each other's versions."""
    return f"m-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server (SQLite) for the whole session, as `prefect server start` runs it.

    This process talks to it through temporary settings; subprocesses (workers, `prefect
    deploy`) through the environment.
    """
    with prefect_session(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server


@pytest.fixture
def flow_env(
    s3_server: S3Server, prefect_server: PrefectServer, model_name: str
) -> Iterator[Settings]:
    """Environment for running flows: the S3 server's settings and a fresh model name."""
    with environment({**s3_server.env(), "MLOPS_MODEL_NAME": model_name}):
        yield get_settings()
