"""Prefect tasks of the training lifecycle: do the I/O, call the pure code, write artifacts."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pandas as pd
from prefect import get_run_logger
from prefect import task as prefect_task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from tasks.candidate import candidate_spec, champion_evaluation, open_model_registry
from tasks.contract import DataContract, load_contract
from tasks.data import load_csv, split_holdout
from tasks.evaluation import Evaluation, evaluate_model
from tasks.gate import GatePolicy, GateVerdict, judge_candidate
from tasks.registry import Manifest, ModelRegistry
from tasks.reports import gate_markdown, validation_markdown
from tasks.s3 import ObjectStore, connect
from tasks.settings import Settings, get_settings
from tasks.training import TrainedModel, train_model
from tasks.validation import DataValidationError, ValidationReport, conform, validate_frame

# Inputs are data frames and live S3 clients: hashing them for a cache key is waste (or fails).
task = partial(prefect_task, cache_policy=NO_CACHE)


class GateFailed(RuntimeError):
    """The candidate did not pass the quality gate; nothing was registered."""


def model_resource(name: str) -> dict[str, str]:
    return {"prefect.resource.id": f"mlops.model.{name}", "prefect.resource.name": name}


@task
def read_contract(settings: Settings) -> DataContract:
    return load_contract(settings.contract_path)


@task
def open_registry(settings: Settings) -> ModelRegistry:
    return open_model_registry(settings)


@task
def load_data(
    source: str | None, settings: Settings, store: ObjectStore | None = None
) -> pd.DataFrame:
    source = source or settings.data_uri
    if not source:
        raise ValueError("no training data given: pass `data` or set MLOPS_DATA_URI")
    if source.startswith("s3://") and store is None:
        store = connect(settings)
    frame = load_csv(source, store)
    frame.attrs["source"] = source
    return frame


@task
def validate_data(frame: pd.DataFrame, contract: DataContract) -> ValidationReport:
    """Check the batch; publish the report; stop the run with every violation named."""
    report = validate_frame(frame, contract)
    create_markdown_artifact(
        validation_markdown(report), key="data-validation", description=f"contract {contract.name}"
    )
    if not report.passed:
        raise DataValidationError(report)
    return report


@task
def split_data(
    frame: pd.DataFrame, contract: DataContract, settings: Settings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    tidy = conform(frame, contract)
    return split_holdout(tidy, settings.holdout_fraction, settings.seed)


@task
def train_candidate(
    train: pd.DataFrame, contract: DataContract, settings: Settings
) -> TrainedModel:
    trained = train_model(train, contract, settings.seed)
    get_run_logger().info("trained on %d rows in %.2fs", trained.rows, trained.seconds)
    return trained


@task
def evaluate_candidate(
    trained: TrainedModel, holdout: pd.DataFrame, contract: DataContract, settings: Settings
) -> Evaluation:
    return evaluate_model(trained.model, holdout, contract, settings.seed)


@task
def score_champion(
    registry: ModelRegistry, holdout: pd.DataFrame, contract: DataContract, settings: Settings
) -> tuple[int | None, Evaluation | None]:
    """The serving champion's numbers on the candidate's own holdout (None if there is none)."""
    return champion_evaluation(registry, holdout, contract, settings.seed, get_run_logger())


@task
def judge(
    candidate: Evaluation, champion: tuple[int | None, Evaluation | None], settings: Settings
) -> GateVerdict:
    version, evaluation = champion
    verdict = judge_candidate(candidate, evaluation, GatePolicy.from_settings(settings), version)
    create_markdown_artifact(
        gate_markdown(verdict, candidate, settings.model_name),
        key="quality-gate",
        description="quality gate verdict",
    )
    return verdict


@task
def enforce_gate(verdict: GateVerdict) -> None:
    if not verdict.passed:
        raise GateFailed("candidate refused by the quality gate: " + "; ".join(verdict.reasons))


@task
def register_candidate(
    registry: ModelRegistry,
    trained: TrainedModel,
    evaluation: Evaluation,
    frame: pd.DataFrame,
    context: tuple[DataContract, Settings, GateVerdict, str],
) -> Manifest:
    contract, settings, verdict, reason = context
    source = str(frame.attrs.get("source", ""))
    spec = candidate_spec(trained, evaluation, frame, (contract, settings, verdict), source)
    spec = spec.model_copy(update={"reason": reason})
    manifest = registry.register(trained.model, spec)
    get_run_logger().info(
        "registered %s v%d (%s)", manifest.name, manifest.version, manifest.sha256
    )
    return manifest


@task
def announce_registration(manifest: Manifest, reason: str) -> None:
    emit_event(
        event="mlops.model.registered",
        resource=model_resource(manifest.name),
        payload={
            "version": manifest.version,
            "storage_uri": manifest.storage_uri,
            "sha256": manifest.sha256,
            "metrics": manifest.metrics,
            "reason": reason,
        },
    )


def run_name(stage: str) -> Callable[[], str]:
    """A flow-run name saying what the run is about: "<stage> <model> (<reason, data or version>)"."""

    def name() -> str:
        from prefect.runtime import flow_run

        parameters = flow_run.parameters
        model = parameters.get("model_name") or get_settings().model_name
        about = next(
            (str(parameters[key]) for key in ("reason", "data", "version") if parameters.get(key)),
            "",
        )
        return f"{stage} {model} ({about})" if about else f"{stage} {model}"

    return name
