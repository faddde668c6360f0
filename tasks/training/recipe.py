"""The one training recipe — validate, split, train, evaluate, judge — written once.

The ci-checks and retrain flows run it step by step as Prefect tasks (tasks/training/stages.py,
so each step shows in the UI); the Kubeflow component runs it whole (`run_recipe`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from tasks.data.contract import DataContract
from tasks.data.loading import data_digest, split_holdout
from tasks.data.validation import DataValidationError, ValidationReport, conform, validate_frame
from tasks.decisions.gate import GateVerdict, judge_candidate
from tasks.registry.datasets import without_provenance
from tasks.registry.versions import DataSummary, ModelRegistry
from tasks.settings import Settings
from tasks.training.candidate import Candidate, Champion, score_champion
from tasks.training.evaluation import baseline_metrics, evaluate_model
from tasks.training.model import train_model

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecipeResult:
    candidate: Candidate
    champion: Champion | None
    verdict: GateVerdict


def validate(frame: pd.DataFrame, contract: DataContract) -> ValidationReport:
    """Every violation of the contract at once; raises `DataValidationError` if there is one."""
    report = validate_frame(frame, contract)
    if not report.passed:
        raise DataValidationError(report)
    return report


def split(
    frame: pd.DataFrame, contract: DataContract, settings: Settings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Conform the batch to the contract, then a seeded train/holdout split."""
    return split_holdout(conform(frame, contract), settings.holdout_fraction, settings.seed)


def fit(
    frame: pd.DataFrame,
    parts: tuple[pd.DataFrame, pd.DataFrame],
    contract: DataContract,
    settings: Settings,
) -> Candidate:
    """Train on the first part, evaluate it and the naive baseline on the holdout, summarise the
    whole batch."""
    train, holdout = parts
    trained = train_model(train, contract, settings.seed, settings.training.params())
    baseline = baseline_metrics(train, holdout, contract)
    evaluation = evaluate_model(trained.model, holdout, contract, settings.seed, baseline)
    source = str(frame.attrs.get("source", ""))
    summary = DataSummary(digest=data_digest(frame), rows=len(frame), source=source)
    return Candidate(trained, evaluation, summary)


def judge(candidate: Candidate, champion: Champion | None, settings: Settings) -> GateVerdict:
    """The gate's verdict on the candidate, against the champion when there is one."""
    return judge_candidate(
        candidate.evaluation,
        champion.evaluation if champion else None,
        settings.gate,
        champion.version if champion else None,
    )


def run_recipe(
    frame: pd.DataFrame,
    contract: DataContract,
    settings: Settings,
    registry: ModelRegistry | None,
    logger: logging.Logger | logging.LoggerAdapter = LOG,
) -> RecipeResult:
    """The whole recipe in one call; the champion is looked up when a registry is given.

    `frame` may be a training-set snapshot: its provenance columns are not the contract's."""
    validate(without_provenance(frame), contract)
    train, holdout = split(frame, contract, settings)
    candidate = fit(frame, (train, holdout), contract, settings)
    champion = (
        score_champion(registry, holdout, contract, settings.seed, logger) if registry else None
    )
    return RecipeResult(candidate, champion, judge(candidate, champion, settings))
