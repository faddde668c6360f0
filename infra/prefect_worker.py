"""Start and stop a Prefect process worker polling one work pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class PrefectWorker:
    pool: str
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM twice (the worker may ignore the first while it drains), then SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                return
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue


def start_worker(pool: str, log_dir: Path, env: dict[str, str] | None = None) -> PrefectWorker:
    """`prefect worker start --pool POOL --type process` in the project directory."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"worker-{pool}.log"
    prefect = Path(sys.executable).with_name("prefect")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                str(prefect),
                "worker",
                "start",
                "--pool",
                pool,
                "--type",
                "process",
                "--limit",
                "4",
                "--prefetch-seconds",
                "5",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PREFECT_WORKER_QUERY_SECONDS": "1", **os.environ, **(env or {})},
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
    time.sleep(0.5)
    if process.poll() is not None:
        raise RuntimeError(f"worker exited at once: {log_path.read_text(errors='replace')[-1500:]}")
    return PrefectWorker(pool, log_path, process)
