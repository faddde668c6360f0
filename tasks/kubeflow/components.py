"""What runs inside the retrain pipeline's pods: the component functions and their steps.

`validate_and_train` reads the run's configuration (contract, gate, training policy: run_config.py)
and its training-set snapshot from S3, validates, trains, evaluates, scores the champion and judges the
candidate with the project's own task code, then stages the candidate (model, ModelSpec, gate
verdict) under `staging/<model>/` in the bucket. `register_candidate` registers a staged candidate
only if its staged verdict passed, signed with the manifest key. Only S3 URIs and small strings
cross between pods; where the bucket is and the credentials come from the pods' environment
(pods.py: a ConfigMap and Secrets). `tasks/kubeflow/pipeline.py` builds the pipeline from these.
"""

# No `from __future__ import annotations`: KFP reads the component signatures' real types.
# No kfp import either: in the pods (_KFP_RUNTIME=true) kfp.dsl is a reduced namespace.
import hashlib
import io
import logging
import secrets
from contextlib import suppress
from datetime import UTC, datetime
from typing import NamedTuple

import joblib
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tasks.decisions.gate import GateVerdict
from tasks.kubeflow.run_config import read_run_config
from tasks.registry.datasets import is_snapshot, read_snapshot
from tasks.registry.signing import SignatureError, sign, verify
from tasks.registry.versions import Manifest, ModelRegistry, ModelSpec, open_registry
from tasks.s3 import ObjectNotFound, ObjectStore
from tasks.settings import get_settings
from tasks.training.candidate import candidate_spec
from tasks.training.model import TrainedModel
from tasks.training.recipe import run_recipe


class CandidateRefused(RuntimeError):
    """The staged candidate failed the quality gate (the KFP counterpart of steps.GateFailed), or
    is not what the train step staged (its signature or sha256 does not match)."""


class StagedCandidate(BaseModel):
    """What `validate_and_train` hands to `register_candidate`, stored next to the model file."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    spec: ModelSpec
    verdict: GateVerdict


def train_and_judge(data_uri: str, config_uri: str, model_name: str) -> tuple[str, GateVerdict]:
    """Validate → split → train → evaluate → judge against the champion; stage the candidate."""
    registry = open_registry(get_settings(model_name=model_name))
    config = read_run_config(registry.store, config_uri)
    settings = get_settings(model_name=model_name, **config.overrides())
    frame = load_training_set(data_uri, registry.store)
    result = run_recipe(frame, config.contract, settings, registry)
    spec = candidate_spec(result.candidate, config.contract, settings, result.verdict)
    staged = _stage(registry, result.candidate.trained, spec, result.verdict)
    return staged, result.verdict


def load_training_set(uri: str, store: ObjectStore) -> pd.DataFrame:
    """The training-set snapshot at `uri`, checked against its digest: what the version's
    manifest will point at, so its lineage never depends on a file that can change."""
    if not is_snapshot(uri, store):
        raise ValueError(f"{uri!r} is not a training-set snapshot (s3://{store.bucket}/datasets/…)")
    return read_snapshot(store, uri)


def register_staged(candidate_uri: str, model_name: str, reason: str) -> Manifest:
    """Register a staged candidate if, and only if, its staged gate verdict passed."""
    registry = open_registry(get_settings(model_name=model_name))
    prefix = _staging_prefix(candidate_uri, registry.store.bucket)
    raw = registry.store.get_bytes(prefix + "candidate.json")
    if registry.signing_key is not None:  # else the registry refuses, or runs unsigned by choice
        signature = None
        with suppress(ObjectNotFound):  # unsigned: refused by verify
            signature = registry.store.get_bytes(prefix + "candidate.sig")
        try:
            verify(registry.signing_key, raw, signature, candidate_uri)
        except SignatureError as error:
            raise CandidateRefused(str(error)) from error
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
    registry: ModelRegistry, trained: TrainedModel, spec: ModelSpec, verdict: GateVerdict
) -> str:
    """Stage the candidate; signed with the manifest key, since the pod that registers it signs
    whatever it finds here."""
    store = registry.store
    buffer = io.BytesIO()
    joblib.dump(trained.model, buffer)
    payload = buffer.getvalue()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"staging/{registry.name}/{stamp}-{secrets.token_hex(4)}/"
    staged = StagedCandidate(sha256=hashlib.sha256(payload).hexdigest(), spec=spec, verdict=verdict)
    document = staged.model_dump_json().encode()
    store.put_bytes(prefix + "model.joblib", payload)
    if registry.signing_key is not None:
        store.put_bytes(prefix + "candidate.sig", sign(registry.signing_key, document))
    store.put_bytes(prefix + "candidate.json", document, "application/json")
    return f"s3://{store.bucket}/{prefix}"


def _staging_prefix(candidate_uri: str, bucket: str) -> str:
    head = f"s3://{bucket}/staging/"
    if not candidate_uri.startswith(head) or not candidate_uri.endswith("/"):
        raise ValueError(f"{candidate_uri!r} is not a staged candidate under {head}")
    return candidate_uri.removeprefix(f"s3://{bucket}/")


# -- the component functions: self-contained sources, run in the image by KFP's executor ------
def validate_and_train(data_uri: str, config_uri: str, model_name: str) -> NamedTuple(
    "TrainOutputs", [("candidate_uri", str), ("gate_passed", bool), ("gate_summary", str)]
):
    """Validate the training set, train and judge a candidate under the run's configuration;
    stage it in S3."""
    from collections import namedtuple

    from tasks.kubeflow.components import train_and_judge

    uri, verdict = train_and_judge(data_uri, config_uri, model_name)
    outputs = namedtuple("TrainOutputs", ["candidate_uri", "gate_passed", "gate_summary"])
    return outputs(uri, verdict.passed, verdict.model_dump_json())


def register_candidate(candidate_uri: str, model_name: str, reason: str) -> int:
    """Register the staged candidate if its gate verdict passed; the new version number."""
    from tasks.kubeflow.components import register_staged

    return register_staged(candidate_uri, model_name, reason).version
