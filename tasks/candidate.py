"""A candidate's way into the registry, free of Prefect: shared by the retrain flow's tasks
(tasks/steps.py) and the Kubeflow pipeline's components (tasks/kubeflow_pipeline.py)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pandas as pd

from tasks.contract import DataContract
from tasks.data import data_digest
from tasks.evaluation import Evaluation, evaluate_model
from tasks.gate import GateVerdict
from tasks.registry import DataSummary, ModelRegistry, ModelSpec, VersionNotFound
from tasks.s3 import connect
from tasks.settings import Settings
from tasks.signing import signing_key
from tasks.training import TrainedModel, library_versions

LOG = logging.getLogger(__name__)


def git_revision(settings: Settings) -> str:
    """MLOPS_GIT_REVISION, else `git rev-parse HEAD`, else "unknown" (images have no git)."""
    if settings.git_revision:
        return settings.git_revision
    root = Path(__file__).resolve().parents[1]
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return "unknown"
    return result.stdout.strip() or "unknown"


def open_model_registry(settings: Settings) -> ModelRegistry:
    """The registry of the configured model, its bucket created with versioning on."""
    store = connect(settings)
    store.ensure_bucket(versioning=True)
    return ModelRegistry(store, settings.model_name, signing_key(settings))


def champion_evaluation(
    registry: ModelRegistry,
    holdout: pd.DataFrame,
    contract: DataContract,
    seed: int,
    logger: logging.Logger | logging.LoggerAdapter = LOG,
) -> tuple[int | None, Evaluation | None]:
    """The serving champion's numbers on the candidate's own holdout (None if there is none)."""
    version = registry.alias("champion")
    if version is None:
        return None, None
    try:
        manifest, model = registry.load(version)
    except VersionNotFound:
        return None, None
    if manifest.features != contract.feature_names:
        logger.warning("champion v%s was trained on other features", version)
    return version, evaluate_model(model, holdout, contract, seed)


def candidate_spec(
    trained: TrainedModel,
    evaluation: Evaluation,
    frame: pd.DataFrame,
    context: tuple[DataContract, Settings, GateVerdict],
    source: str,
) -> ModelSpec:
    """The manifest's content for a candidate trained on `frame` (read from `source`)."""
    contract, settings, verdict = context
    return ModelSpec(
        features=contract.feature_names,
        target=contract.target.name,
        metrics=evaluation.metrics,
        slice_metrics={
            f"{s.column}={s.value}": {"mape": s.mape, "rows": s.rows} for s in evaluation.slices
        },
        data=DataSummary(digest=data_digest(frame), rows=len(frame), source=source),
        contract={"name": contract.name, "digest": contract.digest()},
        git_revision=git_revision(settings),
        params={**trained.params, "seed": settings.seed, "train_rows": trained.rows},
        library_versions=library_versions(),
        parent=verdict.champion_version,
    )
