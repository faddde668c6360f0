"""Start, probe, restart and stop the local stack's servers, every one the same way, on loopback.

Each server runs in a session of its own (so one signal reaches it and anything it spawned),
reads nothing from a terminal, and appends its output to a log file that a restart keeps.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

GRACEFUL = (signal.SIGTERM, signal.SIGKILL)
T = TypeVar("T")


class ServerNotReady(RuntimeError):
    """A server exited or did not answer in time; the message ends with the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_free_port(start: Callable[[int], T], attempts: int = 3) -> T:
    """`start(port)` on a free port; on another one if the failure says the port was taken
    between picking and binding it (any process on the machine may get there first)."""
    for attempt in range(1, attempts + 1):
        try:
            return start(free_port())
        except RuntimeError as failed:
            if attempt == attempts or "address already in use" not in str(failed).lower():
                raise
    raise AssertionError("unreachable")


def port_is_free(port: int) -> bool:
    """Whether `port` on 127.0.0.1 can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def launch(
    command: Sequence[str], env: dict[str, str], cwd: Path | None, log_path: Path
) -> subprocess.Popen:
    """Start `command` in a new session, its output appended to `log_path`."""
    with log_path.open("ab") as log:  # appended: a restarted server keeps its earlier log
        return subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def log_tail(log_path: Path, chars: int = 2000) -> str:
    """The last `chars` characters of a log, or a note that there is none."""
    try:
        return log_path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def wait_until(
    process: subprocess.Popen,
    probe: Callable[[], bool],
    timeout: float,
    what: str,
    log_path: Path,
    error: type[Exception] = ServerNotReady,
) -> None:
    """Call `probe` every 0.2 s until it holds.

    `error`, ending with the end of the log, if the process exits first or `timeout` passes;
    a process still running then is stopped, so a failed start leaves no server behind.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_tail(log_path)
            raise error(f"{what} exited with {process.returncode} (log {log_path}):\n{tail}")
        if probe():
            return
        time.sleep(0.2)
    tail = log_tail(log_path)
    stop(process, timeout=10.0)
    raise error(f"{what} not ready after {timeout:.0f}s (log {log_path}):\n{tail}")


def answers(url: str, ok: Callable[[int], bool], timeout: float = 1.0) -> Callable[[], bool]:
    """A probe: GET `url` answers with a status for which `ok` holds."""

    def probe() -> bool:
        try:
            return ok(httpx.get(url, timeout=timeout).status_code)
        except httpx.HTTPError:
            return False

    return probe


def stop(
    process: subprocess.Popen, timeout: float, signals: Sequence[int] = GRACEFUL
) -> int | None:
    """Send each of `signals` in turn to the process's group, waiting up to `timeout` after
    each, until it has exited; its exit code. The last wait raises TimeoutExpired if even that
    did not end it."""
    for index, sig in enumerate(signals):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if index == len(signals) - 1:
                raise
    return process.returncode


def kill(process: subprocess.Popen) -> None:
    """Crash it: SIGKILL to its whole group, no chance to shut down cleanly."""
    stop(process, timeout=10.0, signals=(signal.SIGKILL,))
