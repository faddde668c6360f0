"""What a Kubeflow retrain trains under, published to S3 by the submitting flow and read by the
pipeline's pods: the data contract and the settings that shape training (seed, holdout share,
gate, training policy), as the flow resolved them for this run.

    staging/<model>/configs/<sha256>.json

A pod sees no file of the flow's, so nothing is read from a local path. The object's name is the
sha256 of its content and the pods check it, so a run trains under exactly what the flow published
(the URI travels as a run parameter, recorded by KFP).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.data.contract import DataContract
from tasks.decisions.gate import GatePolicy
from tasks.s3 import ObjectStore
from tasks.settings import Settings
from tasks.training.policy import TrainingPolicy


class RunConfigMismatch(RuntimeError):
    """A run configuration's content does not match the digest in its name."""


class RunConfig(BaseModel):
    """The contract and the training settings of one retrain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract: DataContract
    seed: int
    holdout_fraction: float
    gate: GatePolicy
    training: TrainingPolicy

    @classmethod
    def of(cls, settings: Settings, contract: DataContract) -> RunConfig:
        return cls(
            contract=contract,
            seed=settings.seed,
            holdout_fraction=settings.holdout_fraction,
            gate=settings.gate,
            training=settings.training,
        )

    def overrides(self) -> dict[str, Any]:
        """The settings it fixes, as `get_settings(**overrides)` takes them (they win over env)."""
        return self.model_dump(exclude={"contract"})


def publish_run_config(store: ObjectStore, model: str, config: RunConfig) -> str:
    """Store `config` under its digest (once); its s3:// URI."""
    payload = config.model_dump_json().encode()
    key = f"staging/{model}/configs/{hashlib.sha256(payload).hexdigest()}.json"
    if not store.exists(key):
        store.put_bytes(key, payload, "application/json")
    return f"s3://{store.bucket}/{key}"


def read_run_config(store: ObjectStore, uri: str) -> RunConfig:
    """The configuration at `uri`, once its content matches the digest in its name."""
    key = uri.removeprefix(f"s3://{store.bucket}/")
    if key == uri or not key.endswith(".json"):
        raise RunConfigMismatch(f"{uri!r} is not a run configuration in bucket {store.bucket!r}")
    payload = store.get_bytes(key)
    named = key.rsplit("/", 1)[-1].removesuffix(".json")
    if hashlib.sha256(payload).hexdigest() != named:
        raise RunConfigMismatch(f"{uri}: the content does not match the digest in its name")
    return RunConfig.model_validate_json(payload)
