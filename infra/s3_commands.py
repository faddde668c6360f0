"""What runs each kind of local S3 server: its command line, S3 port and environment.

Every address is 127.0.0.1; ports are picked free at the time of the call. SeaweedFS gets its
root keys from a config file in its data directory (infra/s3_identities.py adds to it); MinIO
from its environment.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infra.processes import free_port, port_is_free
from infra.s3_binaries import LocalS3Error, ensure_minio_binary, weed_binary

ServerKind = Literal["seaweedfs", "minio"]
SEAWEEDFS_CONFIG = "s3-identities.json"  # in the data directory


@dataclass(frozen=True)
class ServerCommand:
    """How to run one S3 server: the command, the port its S3 API listens on, its environment."""

    command: list[str]
    port: int
    env: dict[str, str] = field(repr=False)


def server_command(
    kind: ServerKind, data_dir: Path, access_key: str, secret_key: str
) -> ServerCommand:
    """The command for `kind` with these root keys; MINIO_* settings of ours never leak in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINIO_")}
    if kind == "seaweedfs":
        command, port = seaweedfs_command(data_dir, access_key, secret_key)
        return ServerCommand(command, port, env)
    if kind == "minio":
        command, port = minio_command(data_dir)
        settings = {
            "MINIO_ROOT_USER": access_key,
            "MINIO_ROOT_PASSWORD": secret_key,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "off",
        }
        return ServerCommand(command, port, env | settings)
    raise LocalS3Error(f"unknown S3 server kind {kind!r}; use 'seaweedfs' or 'minio'")


def seaweedfs_command(data_dir: Path, access_key: str, secret_key: str) -> tuple[list[str], int]:
    """`weed mini` with every service on loopback; (command, S3 port)."""
    config = data_dir / SEAWEEDFS_CONFIG
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
    binary = weed_binary()
    ports = {name: free_port_pair() for name in ("master", "volume", "filer", "s3", "admin")}
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


def minio_command(data_dir: Path) -> tuple[list[str], int]:
    """`minio server` on loopback, never as root; (command, S3 port)."""
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


def free_port_pair() -> int:
    """A port p such that p and p + 10000 (SeaweedFS's gRPC offset) are both free."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(20000)
        if all(port_is_free(p) for p in (port, port + 10000)):
            return port
    raise LocalS3Error("no free port pair found on 127.0.0.1 for SeaweedFS")
