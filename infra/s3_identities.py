"""Two S3 identities on a local S3 server: training reads and writes, serving only reads models.

Production gives MinIO users the policies in infra/k8s/minio-policies/; locally the same files
are applied to MinIO through its admin API, and SeaweedFS gets the equivalent identity actions
(its `-s3.config` file, scoped as `Action:bucket/prefix*`, reloaded on SIGHUP). Keys are random
per call and exist only in memory and in the server's own state, never in the repository.

    serving   read models/ (GetObject, ListBucket under models/) and write serving-logs/; it can
              neither put, overwrite nor delete anything under models/
    training  read, write and delete objects in the bucket
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import urllib3
from minio import Minio
from minio.credentials import StaticProvider
from minio.error import S3Error
from minio.minioadmin import MinioAdmin

from infra.local_s3 import S3Server
from infra.s3_binaries import LocalS3Error
from infra.s3_commands import SEAWEEDFS_CONFIG
from tasks.s3 import connect
from tasks.settings import get_settings

Role = Literal["training", "serving"]
ROLES: tuple[Role, ...] = ("training", "serving")
POLICY_DIR = Path(__file__).resolve().parent / "k8s" / "minio-policies"
POLICY_FILES: dict[Role, str] = {
    "training": "training-readwrite.json",
    "serving": "serving-readonly.json",
}
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Identity:
    """One set of S3 keys with the rights of one role, on one server."""

    role: Role
    url: str
    access_key: str
    secret_key: str = field(repr=False)

    def env(self) -> dict[str, str]:
        """The settings environment that makes a component act as this identity."""
        return {
            "MLOPS_S3_ENDPOINT": self.url,
            "MLOPS_S3_ACCESS_KEY": self.access_key,
            "MLOPS_S3_SECRET_KEY": self.secret_key,
        }


@dataclass(frozen=True)
class S3Identities:
    training: S3Identity
    serving: S3Identity


def minio_policy(role: Role, bucket: str) -> dict:
    """The production policy of a role (infra/k8s/minio-policies/), aimed at `bucket`."""
    document = json.loads((POLICY_DIR / POLICY_FILES[role]).read_text())
    for statement in document["Statement"]:
        statement["Resource"] = [_retarget(arn, bucket) for arn in statement["Resource"]]
    return document


def _retarget(arn: str, bucket: str) -> str:
    head = "arn:aws:s3:::mlops"
    if arn != head and not arn.startswith(head + "/"):
        raise ValueError(f"policy resource {arn!r} is not in the mlops bucket")
    return f"arn:aws:s3:::{bucket}{arn.removeprefix(head)}"


def seaweedfs_actions(role: Role, bucket: str) -> list[str]:
    """SeaweedFS identity actions equal to the MinIO policy (a trailing * matches a key prefix).

    SeaweedFS's "Write" also covers deletes, so the serving identity may delete its own logs
    there; it still cannot write or delete anything under models/.
    """
    if role == "training":
        return [f"{action}:{bucket}" for action in ("Read", "Write", "List", "Tagging")]
    return [f"Read:{bucket}/models/*", f"List:{bucket}/models/*", f"Write:{bucket}/serving-logs/*"]


def create_identities(
    server: S3Server, bucket: str = "mlops", timeout: float = 20.0
) -> S3Identities:
    """Create the bucket (versioned) with the root keys, then a training and a serving identity."""
    _ensure_bucket(server, bucket)
    keys = {role: (role[:5] + secrets.token_hex(6), secrets.token_urlsafe(24)) for role in ROLES}
    if server.kind == "minio":
        _add_minio_users(server, bucket, keys)
    elif server.kind == "seaweedfs":
        _add_seaweedfs_identities(server, bucket, keys)
    else:
        raise LocalS3Error(f"no identities for S3 server kind {server.kind!r}")
    made = {role: S3Identity(role, server.url, *keys[role]) for role in ROLES}
    deadline = time.monotonic() + timeout
    for identity in made.values():
        _wait_accepted(server, identity, bucket, deadline)
    return S3Identities(**made)


def _ensure_bucket(server: S3Server, bucket: str) -> None:
    settings = get_settings(
        s3_endpoint=server.url,
        s3_access_key=server.access_key,
        s3_secret_key=server.secret_key,
        bucket=bucket,
    )
    connect(settings).ensure_bucket(versioning=True)


def _http() -> urllib3.PoolManager:
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=5.0, read=10.0), retries=2)


def _add_minio_users(server: S3Server, bucket: str, keys: dict[Role, tuple[str, str]]) -> None:
    admin = MinioAdmin(
        endpoint=server.endpoint,
        credentials=StaticProvider(server.access_key, server.secret_key),
        region=REGION,
        secure=False,
        http_client=_http(),
    )
    for role, (access_key, secret_key) in keys.items():
        name = f"{bucket}-{POLICY_FILES[role].removesuffix('.json')}"
        admin.policy_add(name, policy=minio_policy(role, bucket))
        admin.user_add(access_key, secret_key)
        admin.attach_policy([name], user=access_key)


def _add_seaweedfs_identities(
    server: S3Server, bucket: str, keys: dict[Role, tuple[str, str]]
) -> None:
    """Add the identities to the server's config file and make it reload it (SIGHUP)."""
    if server.process.poll() is not None:
        raise LocalS3Error("SeaweedFS is not running: cannot add identities to it")
    config = server.data_dir / SEAWEEDFS_CONFIG
    document = json.loads(config.read_text())
    for role, (access_key, secret_key) in keys.items():
        document["identities"].append(
            {
                "name": f"{role}-{access_key}",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": seaweedfs_actions(role, bucket),
            }
        )
    staged = config.with_suffix(".tmp")
    staged.write_text(json.dumps(document))
    staged.chmod(0o600)
    os.replace(staged, config)  # the server never reads a half-written file
    server.process.send_signal(signal.SIGHUP)


def _wait_accepted(server: S3Server, identity: S3Identity, bucket: str, deadline: float) -> None:
    """Wait until the server knows the new keys: both roles may list models/."""
    client = Minio(
        server.endpoint,
        access_key=identity.access_key,
        secret_key=identity.secret_key,
        secure=False,
        region=REGION,
        http_client=_http(),
    )
    while True:
        try:
            next(iter(client.list_objects(bucket, prefix="models/")), None)
            return
        except S3Error as error:
            last = f"{error.code}: {error.message}"
        if server.process.poll() is not None:
            raise LocalS3Error(f"{server.kind} exited while adding identities")
        if time.monotonic() > deadline:
            raise LocalS3Error(f"{server.kind} does not accept the {identity.role} keys: {last}")
        time.sleep(0.1)
