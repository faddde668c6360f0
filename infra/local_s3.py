"""Start and stop a real S3 server on loopback: SeaweedFS (default) or MinIO.

Tests and the main job both come through `start_s3_server`, so what CI exercises is what
users run. Credentials are random per start; nothing is ever written to the repository. What
each kind runs is in infra/s3_commands.py, where its binary comes from in infra/s3_binaries.py.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.processes import answers, kill, launch, stop, wait_until
from infra.s3_binaries import LocalS3Error
from infra.s3_commands import ServerKind, server_command


@dataclass
class S3Server:
    """A running S3 server on 127.0.0.1 with its own random credentials."""

    kind: ServerKind
    endpoint: str  # host:port, no scheme
    access_key: str
    secret_key: str = field(repr=False)
    data_dir: Path
    process: subprocess.Popen = field(repr=False)
    owns_data_dir: bool = False
    # What started it, so `restart` can run the same server again (same ports, data, keys).
    command: list[str] = field(default_factory=list, repr=False)
    process_env: dict[str, str] = field(default_factory=dict, repr=False)
    volumes_at_kill: int = field(default=0, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def env(self) -> dict[str, str]:
        """The settings environment that points the project at this server."""
        return {
            "MLOPS_S3_ENDPOINT": self.url,
            "MLOPS_S3_ACCESS_KEY": self.access_key,
            "MLOPS_S3_SECRET_KEY": self.secret_key,
        }

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its data if we created it."""
        stop(self.process, timeout)
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """Crash the server: SIGKILL its process group, no shutdown; its data dir is kept."""
        if self.process.poll() is None:
            self.volumes_at_kill = self._volume_count()
            kill(self.process)

    def restart(self, ready_timeout: float = 60.0) -> None:
        """Start the same server again after `kill`: same command, ports, data and credentials."""
        if self.process.poll() is None:
            raise LocalS3Error(f"{self.kind} is still running: kill() it before restart()")
        if not self.command:
            raise LocalS3Error(f"{self.kind} was not started by start_s3_server: cannot restart")
        log_path = self.data_dir / f"{self.kind}.log"
        self.process = launch(self.command, self.process_env, self.data_dir, log_path)
        _wait_ready(self, log_path, ready_timeout)
        if self.kind == "seaweedfs":
            self._wait_recovered(time.monotonic() + ready_timeout)

    def _wait_recovered(self, deadline: float) -> None:
        """SeaweedFS answers before it can serve data again: wait until it can.

        Until its master has heard from the volume server (up to ~5 s) reads fail with 500;
        then the first write sometimes hangs ~19 s. A probe file outside every bucket, written
        through the filer, takes that wait here instead of in the caller's first S3 call.
        """
        while self._volume_count() < self.volumes_at_kill:
            if time.monotonic() > deadline:
                raise LocalS3Error("seaweedfs restarted but its volumes did not come back")
            time.sleep(0.2)
        probe = f"http://127.0.0.1:{self._port_flag('-filer.port=')}/.mlops-restart-probe"
        while True:
            try:
                timeout = max(1.0, deadline - time.monotonic())
                if httpx.put(probe, content=b"probe", timeout=timeout).status_code < 300:
                    httpx.delete(probe, timeout=timeout)
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LocalS3Error("seaweedfs restarted but does not accept writes")
            time.sleep(0.2)

    def _port_flag(self, flag: str) -> str:
        return next((arg.removeprefix(flag) for arg in self.command if arg.startswith(flag)), "")

    def _volume_count(self) -> int:
        """Volumes the SeaweedFS master knows of (0 for MinIO, or when it does not answer)."""
        port = self._port_flag("-master.port=")
        if self.kind != "seaweedfs" or not port:
            return 0
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/vol/status", timeout=1.0).json()
        except (httpx.HTTPError, ValueError):
            return 0
        centres = status.get("Volumes", {}).get("DataCenters", {}).values()
        return sum(
            len(v or []) for racks in centres for nodes in racks.values() for v in nodes.values()
        )


def _wait_ready(server: S3Server, log_path: Path, timeout: float) -> None:
    """Until its health endpoint answers; if it never does, it is stopped (its data removed
    when we created it) and LocalS3Error holds the end of its log."""
    health = "/minio/health/ready" if server.kind == "minio" else "/status"
    probe = answers(server.url + health, lambda status: status < 500)
    try:
        wait_until(server.process, probe, timeout, server.kind, log_path, LocalS3Error)
    except LocalS3Error:
        server.stop()
        raise


def start_s3_server(
    kind: ServerKind = "seaweedfs", data_dir: Path | None = None, ready_timeout: float = 60.0
) -> S3Server:
    """Start a real S3 server bound to 127.0.0.1 and wait until it answers."""
    owns = data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix=f"mlops-{kind}-")) if data_dir is None else data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)
    access_key = "mlops" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(24)
    run = server_command(kind, data_dir, access_key, secret_key)
    log_path = data_dir / f"{kind}.log"
    log_path.unlink(missing_ok=True)
    process = launch(run.command, run.env, data_dir, log_path)
    server = S3Server(
        kind, f"127.0.0.1:{run.port}", access_key, secret_key, data_dir, process, owns
    )
    server.command, server.process_env = run.command, run.env
    _wait_ready(server, log_path, ready_timeout)
    return server


@contextmanager
def local_s3(kind: ServerKind = "seaweedfs") -> Iterator[S3Server]:
    """A running S3 server for the duration of the block."""
    server = start_s3_server(kind)
    try:
        yield server
    finally:
        server.stop()
