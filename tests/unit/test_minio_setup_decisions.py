"""The MinIO set-up's decisions, without a server: which endpoint, which keys, what to change."""

from __future__ import annotations

import secrets

import pytest

from infra.minio_setup import (
    KeysRefused,
    attachment_plan,
    parse_args,
    parse_endpoint,
    policy_state,
    read_keys,
)
from infra.s3_policies import training_policy

# Random per run: nothing here looks like, or is, a committed key.
KEYS = {
    name: f"{name.split('_')[-2].lower()}-{secrets.token_hex(8)}"
    for name in (
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "MLOPS_TRAINING_S3_ACCESS_KEY",
        "MLOPS_TRAINING_S3_SECRET_KEY",
        "MLOPS_SERVING_S3_ACCESS_KEY",
        "MLOPS_SERVING_S3_SECRET_KEY",
    )
}


def test_only_scheme_host_and_port_is_an_endpoint() -> None:
    assert parse_endpoint("http://127.0.0.1:9000") == ("127.0.0.1:9000", False)
    assert parse_endpoint("https://minio.example:443/") == ("minio.example:443", True)
    for bad in (
        "127.0.0.1:9000",
        "http://127.0.0.1",
        "ftp://127.0.0.1:9000",
        "http://127.0.0.1:9000/mlops",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:9000?x=1",
    ):
        with pytest.raises(ValueError, match="is not http"):
            parse_endpoint(bad)
    word = secrets.token_hex(8)
    with pytest.raises(ValueError) as refused:
        parse_endpoint(f"http://user:{word}@127.0.0.1:9000")
    assert word not in str(refused.value)


def test_missing_keys_are_all_named_and_roles_need_their_own_access_keys() -> None:
    missing = {k: v for k, v in KEYS.items() if not k.endswith("SECRET_KEY")}
    with pytest.raises(KeysRefused) as refused:
        read_keys(missing | {"MINIO_ROOT_USER": ""}, "http://h:1", "house-price")
    named = str(refused.value)
    assert all(name in named for name in KEYS if name.endswith("SECRET_KEY"))
    assert "MINIO_ROOT_USER" in named and "MINIO_ROOT_PASSWORD" not in named
    with pytest.raises(KeysRefused, match="three different access keys"):
        same = {"MLOPS_SERVING_S3_ACCESS_KEY": KEYS["MLOPS_TRAINING_S3_ACCESS_KEY"]}
        read_keys(KEYS | same, "http://h:1", "house-price")
    keys = read_keys(KEYS, "http://h:1", "house-price")
    assert (keys.serving.model, keys.training.model) == ("house-price", None)
    hidden = ("MINIO_ROOT_PASSWORD", "MLOPS_TRAINING_S3_SECRET_KEY", "MLOPS_SERVING_S3_SECRET_KEY")
    assert not [name for name in hidden if KEYS[name] in repr(keys)]


def test_a_policy_is_unchanged_whatever_order_minio_gives_its_actions_in() -> None:
    wanted = training_policy("mlops")
    shuffled = training_policy("mlops")
    shuffled["Statement"][0]["Action"].reverse()
    assert policy_state(None, wanted) == "created"
    assert policy_state(shuffled, wanted) == "unchanged"
    assert policy_state(training_policy("other"), wanted) == "updated"


def test_a_user_ends_with_exactly_its_policy() -> None:
    assert attachment_plan([], "p") == ("created", ["p"], [])
    assert attachment_plan(["p"], "p") == ("unchanged", [], [])
    assert attachment_plan(["mlops-serving-readonly"], "p") == (
        "updated",
        ["p"],
        ["mlops-serving-readonly"],
    )
    assert attachment_plan(["p", "q"], "p") == ("updated", [], ["q"])


def test_one_model_per_call() -> None:
    with pytest.raises(SystemExit) as refused:
        parse_args(["--endpoint", "http://h:1", "--model", "a-1", "--model", "b-1"])
    assert refused.value.code == 2
    assert parse_args(["--endpoint", "http://h:1", "--model", "house-price"]).bucket == "mlops"
