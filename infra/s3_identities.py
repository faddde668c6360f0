"""S3 identities on a local S3 server: training reads and writes, serving reads one model.

Production gives MinIO users the policies in infra/k8s/minio-policies/ (infra/s3_policies.py
renders them); locally the same documents are applied to MinIO through its admin API, and
SeaweedFS gets the equal identity actions (its `-s3.config` file, scoped as
`Action:bucket/prefix*`, reloaded on SIGHUP). Keys are random per call and exist only in memory
and in the server's own state, never in the repository. The bucket, versioned, is created with
the server's root keys: no identity made here may create it or change its versioning.

    serving   per model: read models/<model>/aliases/ and models/<model>/v<N>/, write
              serving-logs/<model>/date=*/; nothing of another model, nothing else under models/
    training  read, write and delete objects in the bucket; read its versioning
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from dataclasses import dataclass, field

import urllib3
from minio import Minio
from minio.credentials import StaticProvider
from minio.error import S3Error
from minio.minioadmin import MinioAdmin

from infra.local_s3 import S3Server
from infra.s3_binaries import LocalS3Error
from infra.s3_commands import SEAWEEDFS_CONFIG
from infra.s3_policies import (
    Role,
    policy_name,
    seaweedfs_actions,
    serving_policy,
    serving_prefixes,
    training_policy,
)
from tasks.s3 import connect
from tasks.settings import get_settings

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Identity:
    """One set of S3 keys with the rights of one role (for serving: of one model), on one server."""

    role: Role
    url: str
    access_key: str
    secret_key: str = field(repr=False)
    model: str | None = None  # the one model a serving identity may read

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


@dataclass(frozen=True)
class _Grant:
    """What one new identity may do, in each server's terms."""

    identity: S3Identity
    policy_name: str
    policy: dict
    seaweedfs_actions: list[str]
    probe_prefix: str  # a listing it may make: answered once the server knows the keys


def create_identities(
    server: S3Server, model: str, bucket: str = "mlops", timeout: float = 20.0
) -> S3Identities:
    """Create the bucket (versioned) with the root keys, then a training identity and the
    serving identity of `model`."""
    _ensure_bucket(server, bucket)
    training = _grant(server, "training", bucket)
    serving = _grant(server, "serving", bucket, model)
    _add(server, bucket, [training, serving], timeout)
    return S3Identities(training.identity, serving.identity)


def add_serving_identity(
    server: S3Server, model: str, bucket: str = "mlops", timeout: float = 20.0
) -> S3Identity:
    """One more serving identity, for `model` (production has one per model, too)."""
    grant = _grant(server, "serving", bucket, model)
    _add(server, bucket, [grant], timeout)
    return grant.identity


def _grant(server: S3Server, role: Role, bucket: str, model: str | None = None) -> _Grant:
    access_key, secret_key = role[:5] + secrets.token_hex(6), secrets.token_urlsafe(24)
    identity = S3Identity(role, server.url, access_key, secret_key, model)
    if role == "training":
        policy, probe = training_policy(bucket), "models/"
    else:
        policy, probe = serving_policy(model or "", bucket), serving_prefixes(model or "")[0][0]
    actions = seaweedfs_actions(role, bucket, model)
    return _Grant(identity, policy_name(role, model, bucket), policy, actions, probe)


def _add(server: S3Server, bucket: str, grants: list[_Grant], timeout: float) -> None:
    if server.kind == "minio":
        _add_minio_users(server, grants)
    elif server.kind == "seaweedfs":
        _add_seaweedfs_identities(server, grants)
    else:
        raise LocalS3Error(f"no identities for S3 server kind {server.kind!r}")
    deadline = time.monotonic() + timeout
    for grant in grants:
        _wait_accepted(server, grant, bucket, deadline)


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


def _add_minio_users(server: S3Server, grants: list[_Grant]) -> None:
    admin = MinioAdmin(
        endpoint=server.endpoint,
        credentials=StaticProvider(server.access_key, server.secret_key),
        region=REGION,
        secure=False,
        http_client=_http(),
    )
    for grant in grants:
        admin.policy_add(grant.policy_name, policy=grant.policy)
        admin.user_add(grant.identity.access_key, grant.identity.secret_key)
        admin.attach_policy([grant.policy_name], user=grant.identity.access_key)


def _add_seaweedfs_identities(server: S3Server, grants: list[_Grant]) -> None:
    """Add the identities to the server's config file and make it reload it (SIGHUP)."""
    if server.process.poll() is not None:
        raise LocalS3Error("SeaweedFS is not running: cannot add identities to it")
    config = server.data_dir / SEAWEEDFS_CONFIG
    document = json.loads(config.read_text())
    for grant in grants:
        identity = grant.identity
        document["identities"].append(
            {
                "name": f"{identity.role}-{identity.access_key}",
                "credentials": [
                    {"accessKey": identity.access_key, "secretKey": identity.secret_key}
                ],
                "actions": grant.seaweedfs_actions,
            }
        )
    staged = config.with_suffix(".tmp")
    staged.write_text(json.dumps(document))
    staged.chmod(0o600)
    os.replace(staged, config)  # the server never reads a half-written file
    server.process.send_signal(signal.SIGHUP)


def _wait_accepted(server: S3Server, grant: _Grant, bucket: str, deadline: float) -> None:
    """Wait until the server knows the new keys: a listing the identity may make succeeds."""
    identity = grant.identity
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
            next(iter(client.list_objects(bucket, prefix=grant.probe_prefix)), None)
            return
        except S3Error as error:
            last = f"{error.code}: {error.message}"
        if server.process.poll() is not None:
            raise LocalS3Error(f"{server.kind} exited while adding identities")
        if time.monotonic() > deadline:
            raise LocalS3Error(f"{server.kind} does not accept the {identity.role} keys: {last}")
        time.sleep(0.1)
