"""Shared fixtures: real S3 servers and a real Prefect server, started once per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local_s3 import S3Server, start_s3_server
from infra.local_stack import environment
from infra.prefect_server import PrefectServer, prefect_session
from tasks.data.contract import DataContract, load_contract
from tasks.settings import DEFAULT_CONTRACT, Settings, get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def contract() -> DataContract:
    return load_contract(DEFAULT_CONTRACT)


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


def settings_for(server: S3Server, **overrides: object) -> Settings:
    return get_settings(
        s3_endpoint=server.url,
        s3_access_key=server.access_key,
        s3_secret_key=server.secret_key,
        **overrides,
    )


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


def remove_deployments_and_automations() -> None:
    """Delete every deployment and automation on the session's Prefect server, so no later
    test's events trigger a leftover deployment."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            client.delete_automation(automation.id)
        for deployment in client.read_deployments():
            client.delete_deployment(deployment.id)


@pytest.fixture
def flow_env(
    s3_server: S3Server, prefect_server: PrefectServer, model_name: str
) -> Iterator[Settings]:
    """Environment for running flows: the S3 server's settings and a fresh model name."""
    with environment({**s3_server.env(), "MLOPS_MODEL_NAME": model_name}):
        yield get_settings()
