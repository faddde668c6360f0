"""Start, restart and stop the local KServe model server on 127.0.0.1: the parent's side.

`start_model_server` runs `python -m infra.model_server_main ...` in a subprocess and waits until
it answers. S3 credentials reach the child only through its environment (MLOPS_S3_*), never its
arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.processes import answers, kill, launch, log_tail, on_free_port, stop, wait_until
from tasks.decisions.routing import ServeOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINT = "infra.model_server_main"


class ModelServerError(RuntimeError):
    """The model server could not be started; the message holds the end of its log."""


@dataclass
class ModelServer:
    """A running model server process on 127.0.0.1."""

    model_name: str
    port: int
    process: subprocess.Popen = field(repr=False)
    log_path: Path
    # What started it, so `restart` runs the same server again on the same port.
    command: list[str] = field(default_factory=list, repr=False)
    process_env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        return log_tail(self.log_path, chars)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (uvicorn drains, serving logs are flushed), then SIGKILL if it hangs."""
        return stop(self.process, timeout)

    def kill(self) -> None:
        """Crash it: SIGKILL, no drain and no last flush (unflushed serving logs are lost)."""
        kill(self.process)

    def restart(self, ready_timeout: float = 120.0) -> None:
        """Start the same command again (same port and options) once the process has exited."""
        if self.process.poll() is None:
            raise ModelServerError("the model server is still running: kill() or stop() it first")
        if not self.command:
            raise ModelServerError("not started by start_model_server: cannot restart it")
        self.process = launch(self.command, self.process_env, REPO_ROOT, self.log_path)
        _wait_ready(self, ready_timeout)


def start_model_server(
    settings_env: dict[str, str],
    model_name: str,
    port: int | None = None,
    options: ServeOptions | None = None,
    plain: bool = False,
    ready_timeout: float = 120.0,
    extra_args: Sequence[str] = (),
) -> ModelServer:
    """Start the server for `model_name` (routed, or `plain` for the benchmark baseline);
    `extra_args` go to infra/model_server_main.py (e.g. `--storage-uri`: the pinned predictor).

    Without `port`, on a free one (another if it was taken before the server could bind it).
    """
    options = options or ServeOptions()
    env = {**os.environ, **{key: str(value) for key, value in settings_env.items()}}

    def start(on: int) -> ModelServer:
        log_path = Path(tempfile.mkdtemp(prefix="mlops-model-server-")) / "server.log"
        command = [
            *(sys.executable, "-m", ENTRY_POINT, "--model-name", model_name),
            *("--port", str(on), "--options-json", options.model_dump_json()),
            *(["--plain"] if plain else []),
            *extra_args,
        ]
        process = launch(command, env, REPO_ROOT, log_path)
        server = ModelServer(model_name, on, process, log_path, command, env)
        _wait_ready(server, ready_timeout)
        return server

    return start(port) if port else on_free_port(start)


def _wait_ready(server: ModelServer, timeout: float) -> None:
    probe = answers(f"{server.url}/v2/health/ready", lambda status: status == 200)
    wait_until(server.process, probe, timeout, "model server", server.log_path, ModelServerError)
