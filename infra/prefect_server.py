"""Start and stop a real Prefect server (SQLite, UI included) on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.local_s3 import free_port


class PrefectServerError(RuntimeError):
    """The Prefect server did not start."""


@dataclass
class PrefectServer:
    url: str  # the UI; the API is url + "/api"
    home: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def env(self) -> dict[str, str]:
        return {"PREFECT_API_URL": self.api_url, "PREFECT_HOME": str(self.home)}

    def stop(self, timeout: float = 15.0) -> None:
        stop_process_group(self.process, timeout)


def stop_process_group(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the whole group, wait, then SIGKILL: uvicorn children must not outlive us."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def prefect_environment(home: Path) -> dict[str, str]:
    """Settings for a private, offline Prefect: own home and SQLite file, no analytics."""
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def start_prefect_server(
    home: Path, timeout: float = 90.0, attempts: int = 3, port: int | None = None
) -> PrefectServer:
    """Run `prefect server start` on 127.0.0.1; a port taken between pick and bind is retried.

    With `port` (a restart where clients and workers expect it), that port only.
    """
    if port is not None:
        return _start_once(home, port, timeout)
    for attempt in range(attempts):
        try:
            return _start_once(home, free_port(), timeout)
        except PrefectServerError as error:
            if attempt == attempts - 1 or "address already in use" not in str(error):
                raise
    raise AssertionError("unreachable")


@contextmanager
def prefect_session(home: Path, timeout: float = 180.0) -> Iterator[PrefectServer]:
    """A server that this process (settings) and its children (environment) both talk to.

    Queued run logs and events are sent before the server stops, so nothing is lost and no
    "Error logging to API" noise follows.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = start_prefect_server(home, timeout)
    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            # Prefect keeps one events worker per client type, bound to the API URL it started
            # with: stop any earlier one, or this process's events would go to another server.
            EventsWorker.drain_all(timeout=10)
            try:
                yield server
            finally:
                APILogWorker.drain_all(timeout=10)
                EventsWorker.drain_all(timeout=10)
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved
        server.stop()


def _start_once(home: Path, port: int, timeout: float) -> PrefectServer:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **prefect_environment(home)}
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    server = PrefectServer(f"http://127.0.0.1:{port}", home, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (home / "server.log").read_text(errors="replace")[-1500:]
            raise PrefectServerError(f"prefect server exited with {process.returncode}: {tail}")
        try:
            if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise PrefectServerError(f"prefect server not healthy after {timeout:.0f}s ({home}/server.log)")
