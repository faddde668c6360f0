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
# The local worker's only Prefect setting of its own; production's (infra/k8s) keeps the default.
# It polls one SQLite server on loopback: every 0.25 s instead of 1 s takes ~0.4 s off each run's
# Scheduled -> Pending (a run waits half an interval on average) for ~5% of a core more on the
# server (measured idle: 3.5% -> 9%). Left as they are, for a reason:
# - each run still starts two interpreters that import Prefect: 3.9's workspace supervisor, then
#   the engine it execs (1.5-3 s more than one, on 2 busy cores). A `command` job variable would
#   skip the supervisor, but the run would then share the worker's process group and die with it;
# - after Completed is set, the engine joins its heartbeat thread, which sleeps in 1 s steps
#   (prefect/flow_engine.py `_send_heartbeats`): the process exits up to 1 s later, Completed
#   itself is not delayed. PREFECT_FLOWS_HEARTBEAT_FREQUENCY cannot go below 30 nor be unset
#   from the environment, and the silent-run automation (deployments/setup.py) needs the beats.
LOCAL_WORKER_ENV = {"PREFECT_WORKER_QUERY_SECONDS": "0.25"}
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
    worker_env = {**LOCAL_WORKER_ENV, **os.environ, **(env or {})}
    process = launch(command, worker_env, PROJECT_ROOT, log_path)
    # A worker has no health endpoint to ask: one still running after half a second did not
    # die on its arguments or settings; it picks up runs once it has found its pool.
    wait_until(process, _running_for(0.5), 10.0, f"worker on {pool}", log_path)
    return PrefectWorker(pool, log_path, process)


def _running_for(seconds: float) -> Callable[[], bool]:
    began = time.monotonic()
    return lambda: time.monotonic() - began >= seconds
