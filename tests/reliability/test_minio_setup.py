"""The operator's MinIO set-up, infra/README.md step 4, run as written against a real MinIO.

`uv run --locked python -m infra.minio_setup ...` runs in a subprocess with random keys in its
environment; the test then acts as each identity through `tasks.s3.connect` and reads the
server's state through MinIO's admin API. The module starts its own MinIO: the command is meant
for an empty server (what step 2 leaves), and the session's shared MinIO already holds the
bucket `mlops` and policies other tests made, which would make "created" depend on test order.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio.commonconfig import ENABLED
from minio.credentials import StaticProvider
from minio.error import MinioAdminException, S3Error
from minio.minioadmin import MinioAdmin
from minio.versioningconfig import SUSPENDED, VersioningConfig

from infra.local_s3 import S3Server, start_s3_server
from tasks.s3 import ObjectStore, S3AccessDenied, connect
from tasks.settings import get_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KEY_NAMES = (
    "MLOPS_TRAINING_S3_ACCESS_KEY",
    "MLOPS_TRAINING_S3_SECRET_KEY",
    "MLOPS_SERVING_S3_ACCESS_KEY",
    "MLOPS_SERVING_S3_SECRET_KEY",
)
ENV_NAMES = ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", *KEY_NAMES)
LINE = re.compile(r"^(?P<what>.+): (?P<state>created|updated|unchanged)(?: \((?P<detail>.*)\))?$")
MODEL_FILE = "models/house-price/v1/model.joblib"
OTHER_MODEL_FILE = "models/other-model/v1/model.joblib"


@pytest.fixture(scope="module")
def minio() -> Iterator[S3Server]:
    server = start_s3_server("minio")
    yield server
    server.stop()


def new_keys() -> dict[str, str]:
    """Random identity keys, as an operator would generate them in step 3."""
    return {
        "MLOPS_TRAINING_S3_ACCESS_KEY": "train" + secrets.token_hex(6),
        "MLOPS_TRAINING_S3_SECRET_KEY": secrets.token_urlsafe(24),
        "MLOPS_SERVING_S3_ACCESS_KEY": "serve" + secrets.token_hex(6),
        "MLOPS_SERVING_S3_SECRET_KEY": secrets.token_urlsafe(24),
    }


def run_setup(
    server: S3Server,
    keys: dict,
    bucket: str = "mlops",
    endpoint: str | None = None,
    through_uv: bool = True,
) -> subprocess.CompletedProcess[str]:
    """The README's command, with this server's endpoint and root keys and `keys` in the env
    (a key given as None is left out); `through_uv=False` skips uv's start-up for refusals."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env |= {"MINIO_ROOT_USER": server.access_key, "MINIO_ROOT_PASSWORD": server.secret_key}
    env = {k: v for k, v in (env | keys).items() if v is not None}
    uv = shutil.which("uv") or pytest.fail("uv is not on PATH: the README's command needs it")
    python = [uv, "run", "--locked", "python"] if through_uv else [sys.executable]
    command = [*python, "-m", "infra.minio_setup", "--endpoint", endpoint or server.url]
    command += ["--bucket", bucket, "--model", "house-price"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def states(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """{object: created|updated|unchanged} from the command's output, every line parsed."""
    assert result.returncode == 0, result.stderr
    found = [LINE.match(line) for line in result.stdout.splitlines()]
    assert found and all(found), result.stdout
    return {match["what"]: match["state"] for match in found if match}


def assert_no_key_printed(
    result: subprocess.CompletedProcess[str], server: S3Server, keys: dict[str, str]
) -> None:
    """Neither a root key nor an identity's key, access or secret, in what the command said."""
    for value in (server.access_key, server.secret_key, *keys.values()):
        assert value not in result.stdout + result.stderr


def store_as(server: S3Server, access_key: str, secret_key: str, bucket: str) -> ObjectStore:
    return connect(
        get_settings(
            s3_endpoint=server.url,
            s3_access_key=access_key,
            s3_secret_key=secret_key,
            bucket=bucket,
        )
    )


def admin_of(server: S3Server) -> MinioAdmin:
    credentials = StaticProvider(server.access_key, server.secret_key)
    return MinioAdmin(endpoint=server.endpoint, credentials=credentials, secure=False)


def admin_read(read) -> str | None:
    """An admin read's answer, or None for a missing user or policy (HTTP 404)."""
    try:
        return read()
    except MinioAdminException as error:
        if "Status: 404" in str(error):
            return None
        raise


def refusal(attempt) -> str:
    """The code the server answered with; the test fails if it allowed the attempt."""
    try:
        attempt()
    except S3AccessDenied as error:
        return error.__cause__.code
    except S3Error as error:
        return error.code
    pytest.fail("the S3 server allowed it")


def server_state(server: S3Server, bucket: str, keys: dict[str, str], model: str) -> dict:
    """Everything the set-up may touch, as the server reports it (users with their mapping
    timestamps, policies, versioning, every object version in the bucket)."""
    admin, root = admin_of(server), store_as(server, server.access_key, server.secret_key, bucket)
    policies = [f"{bucket}-training-readwrite", f"{bucket}-serving-{model}"]
    users = [keys["MLOPS_TRAINING_S3_ACCESS_KEY"], keys["MLOPS_SERVING_S3_ACCESS_KEY"]]
    versions = root.client.list_objects(bucket, recursive=True, include_version=True)
    return {
        "versioning": root.client.get_bucket_versioning(bucket).status,
        "policies": [as_sets(json.loads(admin.policy_info(name))) for name in policies],
        "users": [json.loads(admin.user_info(user)) for user in users],
        "objects": sorted((v.object_name, v.version_id) for v in versions),
    }


def as_sets(value: object) -> object:
    """A policy with each list sorted: MinIO answers a policy's actions in a new order each read."""
    if isinstance(value, dict):
        return {key: as_sets(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((as_sets(item) for item in value), key=json.dumps)
    return value


def read_only_admin(server: S3Server, bucket: str) -> dict[str, str]:
    """In place of the root keys: keys that may read what the set-up reads, and change nothing."""
    admin, name = admin_of(server), f"read-only-{bucket}"
    admin.policy_add(
        name,
        policy={
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["admin:GetUser", "admin:GetPolicy"]},
                {
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket", "s3:GetBucketVersioning"],
                    "Resource": [f"arn:aws:s3:::{bucket}"],
                },
            ],
        },
    )
    auditor = {"MINIO_ROOT_USER": "audit" + secrets.token_hex(6)}
    auditor["MINIO_ROOT_PASSWORD"] = secrets.token_urlsafe(24)
    admin.user_add(auditor["MINIO_ROOT_USER"], auditor["MINIO_ROOT_PASSWORD"])
    admin.attach_policy([name], user=auditor["MINIO_ROOT_USER"])
    return auditor


def test_the_readme_command_sets_up_minio_for_the_loop(minio: S3Server, reliability) -> None:
    keys = new_keys()
    first = run_setup(minio, keys)
    root = store_as(minio, minio.access_key, minio.secret_key, "mlops")
    training = store_as(minio, *(keys[n] for n in KEY_NAMES[:2]), "mlops")
    serving = store_as(minio, *(keys[n] for n in KEY_NAMES[2:]), "mlops")

    # training: reads, writes and deletes under models/; versions are kept; versioning is not its
    training.put_bytes(MODEL_FILE, b"old")
    training.put_bytes(MODEL_FILE, b"model")
    training.put_bytes("models/house-price/aliases/champion", b"v1")
    training.put_bytes(OTHER_MODEL_FILE, b"other")
    training.put_bytes("models/scratch", b"x")
    training.delete("models/scratch")
    training_codes = [
        refusal(lambda: training.client.set_bucket_versioning("mlops", VersioningConfig(SUSPENDED)))
    ]
    # serving: its own model's folders and its own request logs, nothing else
    day = "serving-logs/house-price/date=2026-01-01/requests.jsonl"
    serving.put_bytes(day, b"{}\n")
    served = (
        serving.get_bytes(MODEL_FILE),
        serving.get_bytes("models/house-price/aliases/champion"),
        list(serving.list_keys("models/house-price/v")),
    )
    serving_codes = [
        refusal(lambda: serving.put_bytes("models/house-price/v2/model.joblib", b"x")),
        refusal(lambda: serving.delete(MODEL_FILE)),
        refusal(lambda: serving.get_bytes(OTHER_MODEL_FILE)),
        refusal(lambda: list(serving.list_keys("models/other-model/"))),
    ]

    before = server_state(minio, "mlops", keys, "house-price")
    second = run_setup(minio, keys)
    after_second = server_state(minio, "mlops", keys, "house-price")
    auditor = read_only_admin(minio, "mlops")
    third = run_setup(minio, keys | auditor)  # may read, may not write: passes only if it doesn't

    assert states(first) == {
        "bucket mlops": "created",
        "versioning of bucket mlops": "updated",
        "policy mlops-training-readwrite": "created",
        "policy mlops-serving-house-price": "created",
        "user training": "created",
        "policies of user training": "created",
        "user serving (house-price)": "created",
        "policies of user serving (house-price)": "created",
    }
    assert root.client.get_bucket_versioning("mlops").status == ENABLED
    assert len(training.version_ids(MODEL_FILE)) == 2 and not training.exists("models/scratch")
    assert training_codes == ["AccessDenied"]
    assert served == (b"model", b"v1", [MODEL_FILE]) and training.get_bytes(day) == b"{}\n"
    assert serving_codes == ["AccessDenied"] * 4
    assert set(states(second).values()) == {"unchanged"}
    assert states(second).keys() == states(first).keys()
    assert after_second == before
    assert set(states(third).values()) == {"unchanged"}
    for result in (first, second, third):
        assert_no_key_printed(result, minio, keys | auditor)
    reliability(
        "security",
        "the operator's MinIO set-up command (infra/README.md step 4), run three times",
        done="ran `python -m infra.minio_setup --bucket mlops --model house-price` on an empty "
        "MinIO; acted as each identity; ran it again with the root keys, then with keys that "
        "may only read",
        expected="8 objects created or updated, bucket versioned; training writes models/ but "
        "not versioning; serving reads house-price and writes its logs only; second run all "
        "unchanged, server state identical; read-only run passes; no key printed",
        observed=f"first: {first.stdout.strip().splitlines()}; training {training_codes}, "
        f"serving {serving_codes}; second: {len(states(second))} unchanged, state equal: "
        f"{after_second == before}; read-only run exit {third.returncode}",
    )


def test_a_missing_key_is_named_and_nothing_is_created(minio: S3Server, reliability) -> None:
    bucket, keys = f"setup-{uuid.uuid4().hex[:8]}", new_keys()
    runs = {}
    for name in ENV_NAMES:
        result = run_setup(minio, keys | {name: None}, bucket, through_uv=False)
        runs[name] = (result.returncode, [n for n in ENV_NAMES if n in result.stderr])
        assert result.stdout == "", result.stdout
        assert_no_key_printed(result, minio, keys)
    bare = minio.url.removeprefix("http://")
    refused = run_setup(minio, keys, bucket, endpoint=bare, through_uv=False)
    admin = admin_of(minio)
    left = {
        "bucket": store_as(minio, minio.access_key, minio.secret_key, bucket).client.bucket_exists(
            bucket
        ),
        "training policy": admin_read(lambda: admin.policy_info(f"{bucket}-training-readwrite")),
        "serving policy": admin_read(lambda: admin.policy_info(f"{bucket}-serving-house-price")),
        "users": [admin_read(lambda n=n: admin.user_info(keys[n])) for n in KEY_NAMES[::2]],
    }

    assert runs == {name: (2, [name]) for name in ENV_NAMES}
    assert refused.returncode == 2 and "is not http(s)://host:port" in refused.stderr
    assert left == {
        "bucket": False,
        "training policy": None,
        "serving policy": None,
        "users": [None, None],
    }
    reliability(
        "bad input: settings and contracts",
        "the MinIO set-up command without one of its six keys, or with a bare host:port",
        done="ran it without each of MINIO_ROOT_USER … MLOPS_SERVING_S3_SECRET_KEY in turn, "
        f"then with --endpoint {minio.endpoint}, on a fresh bucket",
        expected="exit 2 naming exactly the missing variable; the endpoint refused; no bucket, "
        "policy or user created; nothing printed on stdout",
        observed=f"{runs}; endpoint: exit {refused.returncode}; left on the server: {left}",
    )


def test_an_install_from_before_per_model_policies_is_upgraded(
    minio: S3Server, reliability
) -> None:
    """The previous layout: one `mlops-serving-readonly` policy reading every model, a training
    policy that could change versioning; the operator now gives serving a new secret."""
    bucket, old, admin = f"upgrade-{uuid.uuid4().hex[:8]}", new_keys(), admin_of(minio)
    root = store_as(minio, minio.access_key, minio.secret_key, bucket)
    root.ensure_bucket(versioning=True)
    root.put_bytes(OTHER_MODEL_FILE, b"other")
    arn = f"arn:aws:s3:::{bucket}"
    retired = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{arn}/models/*"]}
    everything = {"Effect": "Allow", "Action": ["s3:*"], "Resource": [arn, f"{arn}/*"]}
    admin.policy_add(
        "mlops-serving-readonly", policy={"Version": "2012-10-17", "Statement": [retired]}
    )
    admin.policy_add(
        f"{bucket}-training-readwrite", policy={"Version": "2012-10-17", "Statement": [everything]}
    )
    for role, policy in (
        ("TRAINING", f"{bucket}-training-readwrite"),
        ("SERVING", "mlops-serving-readonly"),
    ):
        user = old[f"MLOPS_{role}_S3_ACCESS_KEY"]
        admin.user_add(user, old[f"MLOPS_{role}_S3_SECRET_KEY"])
        admin.attach_policy([policy], user=user)
    old_serving = store_as(minio, *(old[n] for n in KEY_NAMES[2:]), bucket)
    read_before = old_serving.get_bytes(OTHER_MODEL_FILE)
    keys = old | {"MLOPS_SERVING_S3_SECRET_KEY": secrets.token_urlsafe(24)}

    upgraded = run_setup(minio, keys, bucket)
    serving = store_as(minio, *(keys[n] for n in KEY_NAMES[2:]), bucket)
    training = store_as(minio, *(keys[n] for n in KEY_NAMES[:2]), bucket)
    codes = [
        refusal(lambda: serving.get_bytes(OTHER_MODEL_FILE)),
        refusal(lambda: old_serving.get_bytes(OTHER_MODEL_FILE)),
        refusal(lambda: training.client.set_bucket_versioning(bucket, VersioningConfig(SUSPENDED))),
    ]
    attached = json.loads(admin.user_info(keys["MLOPS_SERVING_S3_ACCESS_KEY"]))["policyName"]
    again = run_setup(minio, keys, bucket)

    assert read_before == b"other"
    assert states(upgraded) == {
        f"bucket {bucket}": "unchanged",
        f"versioning of bucket {bucket}": "unchanged",
        f"policy {bucket}-training-readwrite": "updated",
        f"policy {bucket}-serving-house-price": "created",
        "user training": "unchanged",
        "policies of user training": "unchanged",
        "user serving (house-price)": "updated",
        "policies of user serving (house-price)": "updated",
    }
    assert (
        f"attached {bucket}-serving-house-price, detached mlops-serving-readonly" in upgraded.stdout
    )
    assert attached == f"{bucket}-serving-house-price"
    assert codes == ["AccessDenied", "SignatureDoesNotMatch", "AccessDenied"]
    assert set(states(again).values()) == {"unchanged"}
    assert_no_key_printed(upgraded, minio, keys | old)
    reliability(
        "security",
        "the MinIO set-up command upgrades an install from before per-model serving policies",
        done="gave serving `mlops-serving-readonly` (every model) and training s3:* on the "
        "bucket, then ran the set-up with a new serving secret",
        expected="readonly detached, the model's policy attached, training policy replaced, "
        "serving secret replaced; serving reads no other model, the old secret is refused, "
        "training cannot change versioning; a second run all unchanged",
        observed=f"{upgraded.stdout.strip().splitlines()}; serving policies now {attached!r}; "
        f"{codes}; second run {sorted(set(states(again).values()))}",
    )
