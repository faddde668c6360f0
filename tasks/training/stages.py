"""The training recipe's steps as Prefect tasks: do the I/O, call the recipe, write artifacts."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks import events
from tasks.data.contract import DataContract, load_contract
from tasks.data.loading import load_csv
from tasks.data.validation import DataValidationError, ValidationReport, validate_frame
from tasks.decisions.gate import GateVerdict
from tasks.registry.versions import Manifest, ModelRegistry
from tasks.runs import task
from tasks.s3 import ObjectStore, connect
from tasks.settings import Settings
from tasks.training import recipe
from tasks.training.candidate import Candidate, Champion, candidate_spec
from tasks.training.candidate import score_champion as champion_on
from tasks.training.reports import gate_markdown, validation_markdown


class GateFailed(RuntimeError):
    """The candidate did not pass the quality gate; nothing was registered."""


@task
def read_contract(settings: Settings) -> DataContract:
    return load_contract(settings.contract_path)


@task
def model_setup(
    settings: Settings, registry: ModelRegistry | None = None
) -> tuple[Settings, DataContract]:
    """The run's settings with the model's stored policies under them, and its contract: from
    the model's configuration in the registry (tasks/registry/configs.py) when it has one, else
    the settings' contract file. Without an S3 endpoint (a CSV checked on a laptop) the file.
    A flow that has opened the registry already passes it."""
    if settings.s3_endpoint is None:
        return settings, load_contract(settings.contract_path)
    from tasks.registry.configs import configured
    from tasks.registry.versions import open_registry

    return configured(settings, registry or open_registry(settings))


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
    return recipe.split(frame, contract, settings)


@task
def train_candidate(
    frame: pd.DataFrame,
    parts: tuple[pd.DataFrame, pd.DataFrame],
    contract: DataContract,
    settings: Settings,
) -> Candidate:
    """Train on the split's first part and evaluate on its holdout."""
    candidate = recipe.fit(frame, parts, contract, settings)
    trained = candidate.trained
    get_run_logger().info("trained on %d rows in %.2fs", trained.rows, trained.seconds)
    return candidate


@task
def score_champion(
    registry: ModelRegistry, holdout: pd.DataFrame, contract: DataContract, settings: Settings
) -> Champion | None:
    """The serving champion's numbers on the candidate's own holdout (None if there is none)."""
    return champion_on(registry, holdout, contract, settings.seed, get_run_logger())


@task
def judge(candidate: Candidate, champion: Champion | None, settings: Settings) -> GateVerdict:
    verdict = recipe.judge(candidate, champion, settings)
    create_markdown_artifact(
        gate_markdown(verdict, candidate.evaluation, settings.model_name),
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
    candidate: Candidate,
    verdict: GateVerdict,
    contract: DataContract,
    settings: Settings,
    reason: str,
) -> Manifest:
    spec = candidate_spec(candidate, contract, settings, verdict, reason)
    manifest = registry.register(candidate.trained.model, spec)
    get_run_logger().info(
        "registered %s v%d (%s)", manifest.name, manifest.version, manifest.sha256
    )
    return manifest


@task
def announce_registration(manifest: Manifest, reason: str) -> None:
    events.announce_registration(manifest, reason)
