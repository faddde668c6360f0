"""What the gate compares: a `Candidate` (trained model, its evaluation, its data) and the serving
`Champion` (manifest and its score on the candidate's own holdout), and the manifest content a
candidate is registered with. Free of Prefect: shared by the flows' stages and Kubeflow's steps."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.data.contract import DataContract
from tasks.decisions.gate import GateVerdict
from tasks.registry.versions import DataSummary, Manifest, ModelRegistry, ModelSpec, VersionNotFound
from tasks.settings import Settings
from tasks.training.evaluation import Evaluation, evaluate_model
from tasks.training.model import TrainedModel, library_versions

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A freshly trained model, its numbers on the holdout, and what it was trained on."""

    trained: TrainedModel
    evaluation: Evaluation
    data: DataSummary


@dataclass(frozen=True)
class Champion:
    """The serving champion and its numbers on the candidate's own holdout."""

    manifest: Manifest
    evaluation: Evaluation

    @property
    def version(self) -> int:
        return self.manifest.version


def git_revision(settings: Settings) -> str:
    """MLOPS_GIT_REVISION, else `git rev-parse HEAD`, else "unknown" (images have no git)."""
    if settings.git_revision:
        return settings.git_revision
    root = Path(__file__).resolve().parents[2]
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


def score_champion(
    registry: ModelRegistry,
    holdout: pd.DataFrame,
    contract: DataContract,
    seed: int,
    logger: logging.Logger | logging.LoggerAdapter = LOG,
) -> Champion | None:
    """The serving champion scored on the candidate's own holdout (None if there is none)."""
    version = registry.alias("champion")
    if version is None:
        return None
    try:
        manifest, model = registry.load(version)
    except VersionNotFound:
        return None
    if manifest.features != contract.feature_names:
        logger.warning("champion v%s was trained on other features", version)
    if manifest.task != contract.task:  # a new task is a new model: nothing to compare with
        logger.warning("champion v%s is a %s model, the contract %s: not compared",
                       version, manifest.task, contract.task)  # fmt: skip
        return None
    return Champion(manifest, evaluate_model(model, holdout, contract, seed))


def task_params(trained: TrainedModel, contract: DataContract) -> dict[str, object]:
    """A classifier's task and classes (in `predict_proba` order) for its manifest; nothing for
    a regressor, whose manifest stays as it was."""
    if contract.task != "classification":
        return {}
    return {"task": "classification", "classes": [str(c) for c in trained.model.classes_]}


def candidate_spec(
    candidate: Candidate,
    contract: DataContract,
    settings: Settings,
    verdict: GateVerdict,
    reason: str = "",
) -> ModelSpec:
    """The manifest's content for a candidate that passed `verdict`."""
    trained, evaluation = candidate.trained, candidate.evaluation
    return ModelSpec(
        features=contract.feature_names,
        target=contract.target.name,
        metrics=evaluation.metrics,
        slice_metrics={
            f"{s.column}={s.value}": s.model_dump(
                include={"mae", "rmse", "mape", "accuracy", "log_loss", "rows"}, exclude_none=True
            )
            for s in evaluation.slices
        },
        data=candidate.data,
        contract={"name": contract.name, "digest": contract.digest()},
        git_revision=git_revision(settings),
        params={
            **trained.params,
            "seed": settings.seed,
            "train_rows": trained.rows,
            **task_params(trained, contract),
        },
        library_versions=library_versions(),
        parent=verdict.champion_version,
        reason=reason,
    )
