"""Start and stop a real Prefect server (SQLite, UI included) on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from infra.processes import answers, launch, on_free_port, stop, wait_until


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
        """SIGTERM the whole group, then SIGKILL: uvicorn children must not outlive us."""
        stop(self.process, timeout)


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
    return on_free_port(lambda free: _start_once(home, free, timeout), attempts)


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
    log_path = home / "server.log"
    # A fresh log per start: on_free_port reads its end for this attempt's "address in use".
    log_path.unlink(missing_ok=True)
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    process = launch(command, env, None, log_path)
    server = PrefectServer(f"http://127.0.0.1:{port}", home, process)
    probe = answers(f"{server.api_url}/health", lambda status: status == 200, timeout=2.0)
    wait_until(process, probe, timeout, "prefect server", log_path, PrefectServerError)
    return server
