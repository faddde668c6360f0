"""What runs inside the retrain pipeline's pods (the component functions, their steps) and how
those pods are configured (image, S3 Secret, env).

`validate_and_train` loads the data from S3, validates it against the contract, trains, evaluates,
scores the champion and judges the candidate with the project's own task code, then stages the
candidate (model, ModelSpec, gate verdict) under `staging/<model>/` in the bucket.
`register_candidate` registers a staged candidate only if its staged verdict passed. Only S3 URIs
and small strings cross between pods. `tasks/kubeflow/pipeline.py` builds the pipeline from these
functions (image, Secret, env) and submits it; S3 credentials reach the pods as environment
variables from a Kubernetes Secret, never as arguments.
"""

# No `from __future__ import annotations`: KFP reads the component signatures' real types.
# No kfp import either: in the pods (_KFP_RUNTIME=true) kfp.dsl is a reduced namespace.
import hashlib
import io
import logging
import secrets
from datetime import UTC, datetime
from typing import NamedTuple

import joblib
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.data.contract import load_contract
from tasks.data.loading import load_csv
from tasks.decisions.gate import GateVerdict
from tasks.registry.versions import Manifest, ModelSpec, open_registry
from tasks.s3 import ObjectStore
from tasks.settings import get_settings
from tasks.training.candidate import candidate_spec
from tasks.training.model import TrainedModel
from tasks.training.recipe import run_recipe

# Secret key names mapped to variable names; no value here.
# pragma: allowlist nextline secret
SECRET_KEY_TO_ENV = {"access_key": "MLOPS_S3_ACCESS_KEY", "secret_key": "MLOPS_S3_SECRET_KEY"}


class CandidateRefused(RuntimeError):
    """The staged candidate failed the quality gate (the KFP counterpart of steps.GateFailed)."""


class PipelineConfig(BaseModel):
    """How the pipeline's pods are built: the image, the S3 Secret, non-secret MLOPS_* settings."""

    model_config = ConfigDict(frozen=True)

    image: str = Field(
        "ghcr.io/selfheal-mlops/selfheal-mlops:latest",
        min_length=1,
        description="container image with this project (and kfp) installed",
    )
    s3_secret: str = Field(
        "mlops-s3",
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Kubernetes Secret in the run's namespace with keys access_key, secret_key",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="non-secret settings, e.g. MLOPS_S3_ENDPOINT"
    )

    @field_validator("env")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        leaked = sorted(set(value) & set(SECRET_KEY_TO_ENV.values()))
        if leaked:
            raise ValueError(f"{leaked} must come from the Kubernetes Secret, not the package")
        return value


class StagedCandidate(BaseModel):
    """What `validate_and_train` hands to `register_candidate`, stored next to the model file."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    spec: ModelSpec
    verdict: GateVerdict


def train_and_judge(data_uri: str, model_name: str) -> tuple[str, GateVerdict]:
    """Validate → split → train → evaluate → judge against the champion; stage the candidate."""
    settings = get_settings(model_name=model_name, data_uri=data_uri)
    contract = load_contract(settings.contract_path)
    registry = open_registry(settings, create_bucket=True)
    frame = load_csv(data_uri, registry.store)
    frame.attrs["source"] = data_uri
    result = run_recipe(frame, contract, settings, registry)
    spec = candidate_spec(result.candidate, contract, settings, result.verdict)
    staged = _stage(registry.store, model_name, result.candidate.trained, spec, result.verdict)
    return staged, result.verdict


def register_staged(candidate_uri: str, model_name: str, reason: str) -> Manifest:
    """Register a staged candidate if, and only if, its staged gate verdict passed."""
    registry = open_registry(get_settings(model_name=model_name), create_bucket=True)
    prefix = _staging_prefix(candidate_uri, registry.store.bucket)
    raw = registry.store.get_bytes(prefix + "candidate.json")
    staged = StagedCandidate.model_validate_json(raw)
    if not staged.verdict.passed:
        reasons = "; ".join(staged.verdict.reasons)
        raise CandidateRefused(f"candidate refused by the quality gate: {reasons}")
    payload = registry.store.get_bytes(prefix + "model.joblib")
    if hashlib.sha256(payload).hexdigest() != staged.sha256:
        raise CandidateRefused(f"{candidate_uri}model.joblib does not match its staged sha256")
    spec = staged.spec.model_copy(update={"reason": reason})
    manifest = registry.register(joblib.load(io.BytesIO(payload)), spec)
    logging.getLogger(__name__).info("registered %s v%d", manifest.name, manifest.version)
    return manifest


def _stage(
    store: ObjectStore,
    model_name: str,
    trained: TrainedModel,
    spec: ModelSpec,
    verdict: GateVerdict,
) -> str:
    buffer = io.BytesIO()
    joblib.dump(trained.model, buffer)
    payload = buffer.getvalue()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"staging/{model_name}/{stamp}-{secrets.token_hex(4)}/"
    staged = StagedCandidate(sha256=hashlib.sha256(payload).hexdigest(), spec=spec, verdict=verdict)
    store.put_bytes(prefix + "model.joblib", payload)
    store.put_bytes(
        prefix + "candidate.json", staged.model_dump_json().encode(), "application/json"
    )
    return f"s3://{store.bucket}/{prefix}"


def _staging_prefix(candidate_uri: str, bucket: str) -> str:
    head = f"s3://{bucket}/staging/"
    if not candidate_uri.startswith(head) or not candidate_uri.endswith("/"):
        raise ValueError(f"{candidate_uri!r} is not a staged candidate under {head}")
    return candidate_uri.removeprefix(f"s3://{bucket}/")


# -- the component functions: self-contained sources, run in the image by KFP's executor ------
def validate_and_train(data_uri: str, model_name: str) -> NamedTuple(
    "TrainOutputs", [("candidate_uri", str), ("gate_passed", bool), ("gate_summary", str)]
):
    """Validate the data, train and judge a candidate; stage it in S3."""
    from collections import namedtuple

    from tasks.kubeflow.components import train_and_judge

    uri, verdict = train_and_judge(data_uri, model_name)
    outputs = namedtuple("TrainOutputs", ["candidate_uri", "gate_passed", "gate_summary"])
    return outputs(uri, verdict.passed, verdict.model_dump_json())


def register_candidate(candidate_uri: str, model_name: str, reason: str) -> int:
    """Register the staged candidate if its gate verdict passed; the new version number."""
    from tasks.kubeflow.components import register_staged

    return register_staged(candidate_uri, model_name, reason).version
