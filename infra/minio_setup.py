"""`python -m infra.minio_setup`: the operator's MinIO set-up (infra/README.md, step 4), no `mc`.

Against the port-forwarded MinIO it creates the bucket, turns versioning on (never off), creates
or replaces the training policy and the serving policy of one model (infra/s3_policies.py), adds
or updates the two users and attaches exactly their policy, detaching any other, such as
`mlops-serving-readonly` of the layout before per-model policies. It prints one line per object,
created, updated or unchanged, and a second run changes nothing. One model per call: each model
has its own serving identity, so another model is another call with that model's serving keys.

Keys come from the environment only and are never printed: MINIO_ROOT_USER, MINIO_ROOT_PASSWORD
and MLOPS_{TRAINING,SERVING}_S3_{ACCESS,SECRET}_KEY. Exit 2: a bad argument or a missing key,
before any change; exit 1: the server refused or failed (the lines above say what was done).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.credentials import StaticProvider
from minio.error import MinioAdminException, S3Error
from minio.minioadmin import MinioAdmin
from minio.versioningconfig import VersioningConfig

from infra.s3_identities import REGION, S3Identity, _http
from infra.s3_policies import (
    BUCKET,
    BUCKET_NAME,
    MODEL_NAME,
    policy_name,
    serving_policy,
    training_policy,
)

State = Literal["created", "updated", "unchanged"]
ROOT_ENV = ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
TRAINING_ENV = ("MLOPS_TRAINING_S3_ACCESS_KEY", "MLOPS_TRAINING_S3_SECRET_KEY")
SERVING_ENV = ("MLOPS_SERVING_S3_ACCESS_KEY", "MLOPS_SERVING_S3_SECRET_KEY")
# What S3 answers keys it does not know: the user's secret is not the one in the environment
# (AccessDenied means the signature was good, the policy said no).
UNKNOWN_KEYS = {"SignatureDoesNotMatch", "InvalidAccessKeyId"}


class KeysRefused(ValueError):
    """The environment lacks a key, or gives two roles the same access key."""


@dataclass(frozen=True)
class Keys:
    root_user: str
    root_password: str = field(repr=False)
    training: S3Identity
    serving: S3Identity


@dataclass(frozen=True)
class Change:
    """What the set-up found, and did, to one object on the server."""

    what: str  # "bucket mlops", "policy mlops-serving-house-price", "user training"
    state: State
    detail: str = ""

    def line(self) -> str:
        return f"{self.what}: {self.state}" + (f" ({self.detail})" if self.detail else "")


def parse_endpoint(endpoint: str) -> tuple[str, bool]:
    """(host:port, secure) of an http(s)://host:port endpoint; ValueError for anything else."""
    url = urlsplit(endpoint)
    try:
        port = url.port
    except ValueError:
        port = None
    extra = url.path not in {"", "/"} or url.query or url.fragment or "@" in url.netloc
    if url.scheme not in {"http", "https"} or not url.hostname or port is None or extra:
        shown = "<with credentials>" if "@" in endpoint else repr(endpoint)
        raise ValueError(f"endpoint {shown} is not http(s)://host:port")
    return url.netloc, url.scheme == "https"


def read_keys(environ: Mapping[str, str], endpoint: str, model: str) -> Keys:
    """The root keys and both identities' keys, from the environment only."""
    missing = [n for n in (*ROOT_ENV, *TRAINING_ENV, *SERVING_ENV) if not environ.get(n)]
    if missing:
        raise KeysRefused(f"missing from the environment: {', '.join(missing)}")
    root_user, root_password = (environ[name] for name in ROOT_ENV)
    training = S3Identity("training", endpoint, *(environ[name] for name in TRAINING_ENV))
    serving = S3Identity("serving", endpoint, *(environ[name] for name in SERVING_ENV), model)
    if len({root_user, training.access_key, serving.access_key}) != 3:
        raise KeysRefused("root, training and serving need three different access keys")
    return Keys(root_user, root_password, training, serving)


def policy_state(current: dict | None, wanted: dict) -> State:
    """created when the server has no such policy, unchanged when it holds the same rules."""
    if current is None:
        return "created"
    return "unchanged" if _canonical(current) == _canonical(wanted) else "updated"


def _canonical(value: object) -> object:
    """Every list of a policy is a set (MinIO gives actions back in its own order)."""
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((_canonical(item) for item in value), key=json.dumps)
    return value


def attachment_plan(current: list[str], wanted: str) -> tuple[State, list[str], list[str]]:
    """(state, to attach, to detach) for a user to hold exactly the policy `wanted`."""
    attach, detach = ([] if wanted in current else [wanted]), sorted(set(current) - {wanted})
    if not attach and not detach:
        return "unchanged", [], []
    return ("updated" if current else "created"), attach, detach


def set_up(endpoint: str, bucket: str, model: str, keys: Keys) -> Iterator[Change]:
    """Bring the server to the wanted state, one object at a time, saying what each needed."""
    root = _s3(endpoint, keys.root_user, keys.root_password)
    netloc, secure = parse_endpoint(endpoint)
    provider = StaticProvider(keys.root_user, keys.root_password)
    admin = MinioAdmin(
        endpoint=netloc, credentials=provider, region=REGION, secure=secure, http_client=_http()
    )
    yield _ensure_bucket(root, bucket)
    yield _ensure_versioning(root, bucket)
    grants = [
        (keys.training, policy_name("training", None, bucket), training_policy(bucket)),
        (keys.serving, policy_name("serving", model, bucket), serving_policy(model, bucket)),
    ]
    for _, name, policy in grants:
        yield _ensure_policy(admin, name, policy)
    for identity, name, _ in grants:
        yield _ensure_user(admin, identity, bucket)
        yield _ensure_attachment(admin, identity, name)


def _s3(endpoint: str, access_key: str, secret_key: str) -> Minio:
    netloc, secure = parse_endpoint(endpoint)
    return Minio(
        netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=REGION,
        http_client=_http(),
    )


def _ensure_bucket(root: Minio, bucket: str) -> Change:
    if root.bucket_exists(bucket):
        return Change(f"bucket {bucket}", "unchanged")
    root.make_bucket(bucket)
    return Change(f"bucket {bucket}", "created")


def _ensure_versioning(root: Minio, bucket: str) -> Change:
    status = root.get_bucket_versioning(bucket).status or "Off"  # never set: None
    if status == ENABLED:
        return Change(f"versioning of bucket {bucket}", "unchanged", ENABLED)
    root.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    return Change(f"versioning of bucket {bucket}", "updated", f"was {status}, now {ENABLED}")


def _ensure_policy(admin: MinioAdmin, name: str, policy: dict) -> Change:
    current = _admin_read(lambda: admin.policy_info(name), "XMinioAdminNoSuchPolicy")
    state = policy_state(current, policy)
    if state != "unchanged":
        admin.policy_add(name, policy=policy)  # creates, or replaces the whole document
    return Change(f"policy {name}", state)


def _ensure_user(admin: MinioAdmin, identity: S3Identity, bucket: str) -> Change:
    info = _admin_read(lambda: admin.user_info(identity.access_key), "XMinioAdminNoSuchUser")
    reasons = []
    if info is not None and info.get("status") != "enabled":
        reasons.append("enabled again")
    elif info is not None and not _knows_secret(identity, bucket):
        reasons.append("new secret key")
    if info is not None and not reasons:
        return Change(_user(identity), "unchanged")
    admin.user_add(identity.access_key, identity.secret_key)  # sets the secret, and enables
    return Change(_user(identity), "updated" if info else "created", ", ".join(reasons))


def _ensure_attachment(admin: MinioAdmin, identity: S3Identity, name: str) -> Change:
    info = json.loads(admin.user_info(identity.access_key))
    current = [p for p in info.get("policyName", "").split(",") if p]
    state, attach, detach = attachment_plan(current, name)
    if attach:
        admin.attach_policy(attach, user=identity.access_key)
    if detach:
        admin.detach_policy(detach, user=identity.access_key)
    done = [*(f"attached {p}" for p in attach), *(f"detached {p}" for p in detach)]
    return Change(f"policies of {_user(identity)}", state, ", ".join(done) or name)


def _knows_secret(identity: S3Identity, bucket: str) -> bool:
    """Whether the server accepts the identity's secret: a signed read, allowed or not."""
    client = _s3(identity.url, identity.access_key, identity.secret_key)
    try:
        client.get_bucket_versioning(bucket)
    except S3Error as error:
        if error.code in UNKNOWN_KEYS:
            return False
        if error.code != "AccessDenied":
            raise
    return True


def _admin_read(read, missing_code: str) -> dict | None:
    """The JSON an admin read answers, or None when the server says the object is missing."""
    try:
        return json.loads(read())
    except MinioAdminException as error:
        body = getattr(error, "_body", "")  # minio-py keeps the server's answer only here
        if body.startswith("{") and json.loads(body).get("Code") == missing_code:
            return None
        raise


def _user(identity: S3Identity) -> str:
    return f"user {identity.role}" + (f" ({identity.model})" if identity.model else "")


def _endpoint(text: str) -> str:
    try:
        parse_endpoint(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.minio_setup",
        description="Set up MinIO for the loop: bucket, versioning, policies, users "
        "(keys from the environment only)",
    )
    parser.add_argument("--endpoint", required=True, type=_endpoint, help="http(s)://host:port")
    parser.add_argument("--bucket", default=BUCKET)
    parser.add_argument("--model", required=True, action="append", help="the served model")
    args = parser.parse_args(argv)
    if len(args.model) != 1:
        parser.error("one --model per call: each model has its own serving keys")
    args.model = args.model[0]
    if not MODEL_NAME.fullmatch(args.model):
        parser.error(f"model name {args.model!r} is not {MODEL_NAME.pattern}")
    if not BUCKET_NAME.fullmatch(args.bucket):
        parser.error(f"bucket name {args.bucket!r} is not {BUCKET_NAME.pattern}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        keys = read_keys(os.environ, args.endpoint, args.model)
    except KeysRefused as error:
        print(f"minio_setup: nothing changed: {error}", file=sys.stderr)
        return 2
    try:
        for change in set_up(args.endpoint, args.bucket, args.model, keys):
            print(change.line(), flush=True)
    except (S3Error, MinioAdminException, urllib3.exceptions.HTTPError, OSError) as error:
        print(f"minio_setup: stopped: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
