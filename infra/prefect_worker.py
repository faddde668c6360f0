"""Start and stop a Prefect process worker polling one work pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.processes import launch, stop, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The worker may ignore the first SIGTERM while it drains its runs: a second one, then SIGKILL.
DRAIN_THEN_KILL = (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL)


@dataclass
class PrefectWorker:
    pool: str
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM twice (the worker may ignore the first while it drains), then SIGKILL."""
        stop(self.process, timeout, DRAIN_THEN_KILL)


def start_worker(pool: str, log_dir: Path, env: dict[str, str] | None = None) -> PrefectWorker:
    """`prefect worker start --pool POOL --type process` in the project directory."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"worker-{pool}.log"
    prefect = Path(sys.executable).with_name("prefect")
    command = [
        *(str(prefect), "worker", "start", "--pool", pool, "--type", "process"),
        *("--limit", "4", "--prefetch-seconds", "5"),
    ]
    worker_env = {"PREFECT_WORKER_QUERY_SECONDS": "1", **os.environ, **(env or {})}
    process = launch(command, worker_env, PROJECT_ROOT, log_path)
    # A worker has no health endpoint to ask: one still running after half a second did not
    # die on its arguments or settings; it picks up runs once it has found its pool.
    wait_until(process, _running_for(0.5), 10.0, f"worker on {pool}", log_path)
    return PrefectWorker(pool, log_path, process)


def _running_for(seconds: float) -> Callable[[], bool]:
    began = time.monotonic()
    return lambda: time.monotonic() - began >= seconds
