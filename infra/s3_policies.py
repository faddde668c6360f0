"""What each S3 identity may do: MinIO policy documents and the equal SeaweedFS identity actions.

    training   read, write and delete objects anywhere in the bucket; read its versioning but
               never change it (a right to enable versioning is also a right to suspend it): the
               operator enables it once, with MinIO's root keys
    serving    one identity per model, `mlops-serving-<model>`: list and read that model's alias
               pointers (models/<model>/aliases/) and version folders (models/<model>/v<N>/:
               manifest.json, manifest.sig, model.joblib) and its signed configuration
               (models/<model>/config.json: the contract), and write its own request logs
               (serving-logs/<model>/date=<day>/); nothing of any other model, no labels, no
               history, leases or indexes, no delete or overwrite under models/

Both servers get their rules from the same prefixes (`SERVING_READS`, `SERVING_WRITES`), so they
cannot drift apart. infra/k8s/minio-policies/ holds them rendered for the bucket `mlops`: the
training policy and the serving policy of the example model house-price; for another model,
`python -m infra.s3_policies serving <model> > mlops-serving-<model>.json`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Literal

Role = Literal["training", "serving"]
BUCKET = "mlops"
POLICY_DIR = Path(__file__).resolve().parent / "k8s" / "minio-policies"
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")  # tasks/settings.py's model_name; no globs
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's rule: no globs either
# What the serving identity of a model needs, as key prefixes (`{model}` filled in). Reads: the
# aliases the model server resolves at start (tasks/registry/aliases.py lists and reads them) and
# each version's folder, listed and downloaded whole by KServe's storage initializer and read
# file by file by the model server (tasks/registry/versions.py `load`), and the model's stored
# configuration, whose contract the server checks requests against (tasks/registry/configs.py).
# Writes: the request logs
# (tasks/modelserver/logs.py `log_key`); labels under serving-logs/<model>/labels/ are the
# truth, attached by the training side, so the server that is judged by them cannot write them.
SERVING_READS = ("models/{model}/aliases/", "models/{model}/v", "models/{model}/config.json")
SERVING_WRITES = ("serving-logs/{model}/date=",)


def policy_name(role: Role, model: str | None = None, bucket: str = BUCKET) -> str:
    """The MinIO policy name: mlops-training-readwrite, mlops-serving-<model> (for `mlops`)."""
    return f"{bucket}-training-readwrite" if role == "training" else f"{bucket}-serving-{model}"


def policy_file(role: Role, model: str | None = None) -> Path:
    """The committed policy of a role (for the bucket `mlops`)."""
    return POLICY_DIR / f"{policy_name(role, model).removeprefix(BUCKET + '-')}.json"


def training_policy(bucket: str = BUCKET) -> dict:
    """Read and write objects in `bucket`; read, never put, its versioning."""
    arn = _arn(bucket)
    bucket_actions = ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"]
    return _document(
        _statement("Bucket", [*bucket_actions, "s3:GetBucketVersioning"], [arn]),
        _statement(
            "Objects",
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"],
            [f"{arn}/*"],
        ),
    )


def serving_policy(model: str, bucket: str = BUCKET) -> dict:
    """List and read `model`'s aliases and versions; write its request logs; nothing else."""
    reads, writes = serving_prefixes(model)
    arn = _arn(bucket)
    listing = _statement("ListOwnModel", ["s3:ListBucket"], [arn])
    listing["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in reads]}}
    return _document(
        listing,
        _statement("ReadOwnModel", ["s3:GetObject"], [f"{arn}/{p}*" for p in reads]),
        _statement("WriteOwnServingLogs", ["s3:PutObject"], [f"{arn}/{p}*" for p in writes]),
    )


def seaweedfs_actions(role: Role, bucket: str = BUCKET, model: str | None = None) -> list[str]:
    """SeaweedFS identity actions equal to the MinIO policy (a trailing * matches a key prefix).

    `Write:<bucket>/*` covers every object but not the bucket itself, so it holds no
    PutBucketVersioning (`Write:<bucket>` would). SeaweedFS's "Write" also covers deletes, so
    the serving identity may delete its own request logs there; never anything under models/.
    """
    if role == "training":
        return [f"Read:{bucket}", f"List:{bucket}", f"Write:{bucket}/*"]
    reads, writes = serving_prefixes(model or "")
    return [
        *(f"{action}:{bucket}/{p}*" for p in reads for action in ("Read", "List")),
        *(f"Write:{bucket}/{p}*" for p in writes),
    ]


def serving_prefixes(model: str) -> tuple[list[str], list[str]]:
    """(read prefixes, write prefixes) of `model`'s serving identity."""
    if not MODEL_NAME.fullmatch(model):
        raise ValueError(f"model name {model!r} is not {MODEL_NAME.pattern}: no serving policy")
    return [p.format(model=model) for p in SERVING_READS], [
        p.format(model=model) for p in SERVING_WRITES
    ]


def _arn(bucket: str) -> str:
    if not BUCKET_NAME.fullmatch(bucket):
        raise ValueError(f"bucket name {bucket!r} is not {BUCKET_NAME.pattern}: no policy")
    return f"arn:aws:s3:::{bucket}"


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def render(role: Role, model: str | None = None, bucket: str = BUCKET) -> str:
    """The policy as the committed files hold it (JSON, two-space indent, newline at the end)."""
    if role == "training":
        return json.dumps(training_policy(bucket), indent=2) + "\n"
    return json.dumps(serving_policy(model or "", bucket), indent=2) + "\n"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Print an S3 identity's MinIO policy")
    parser.add_argument("role", choices=["training", "serving"])
    parser.add_argument("model", nargs="?", help="the served model (serving only)")
    parser.add_argument("--bucket", default=BUCKET)
    args = parser.parse_args(argv)
    if (args.role == "serving") != (args.model is not None):
        parser.error("give a model name for `serving`, and only for it")
    if args.model is not None and not MODEL_NAME.fullmatch(args.model):
        parser.error(f"model name {args.model!r} is not {MODEL_NAME.pattern}")
    if not BUCKET_NAME.fullmatch(args.bucket):
        parser.error(f"bucket name {args.bucket!r} is not {BUCKET_NAME.pattern}")
    return args


if __name__ == "__main__":
    arguments = _parse(None)
    print(render(arguments.role, arguments.model, arguments.bucket), end="")
