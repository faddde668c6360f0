"""Canary evidence from the serving logs on S3, judged at every poll and recorded when decided.

The same code serves every target: the local model server and KServe predictor pods write the
same logs (version, latency, status, inputs, prediction per row), and labels join them by request
id. Only the canary window counts, for both versions: rows from the moment the canary took traffic.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.decisions.canary import CanaryVerdict, decide_canary
from tasks.registry.versions import ModelRegistry
from tasks.release.records import VerdictRecord, explain, save_record
from tasks.release.window import CanaryWindow, scoring_for
from tasks.runs import task
from tasks.settings import Settings


def canary_started_at(registry: ModelRegistry, version: int) -> datetime:
    """When the canary alias last moved to `version` (from the alias history)."""
    for move in reversed(registry.history()):
        if move.alias == "canary" and move.to_version == version:
            return move.at
    return datetime.now(UTC)


@task
def watch_canary(settings: Settings, registry: ModelRegistry) -> VerdictRecord | None:
    """Judge the live canary every poll until the verdict is not "wait"; record that verdict.

    None when there is no canary to judge (it was promoted or rolled back meanwhile, say by the
    failover on its first error): a re-run then has nothing to do, and that is not a failure.
    """
    logger, policy = get_run_logger(), settings.canary
    stable, canary = registry.alias("champion"), registry.alias("canary")
    if canary is None or stable is None:
        logger.info("no canary to judge (champion v%s, canary v%s)", stable, canary)
        return None
    since = canary_started_at(registry, canary)
    scoring = scoring_for(registry.manifest(canary))  # log loss for a classifier
    window = CanaryWindow(registry.store, registry.name, since, scoring)
    while True:
        now = datetime.now(UTC)
        evidence = window.evidence(stable, canary, now)
        verdict = decide_canary(*evidence, policy)
        logger.info(
            "v%d vs v%d: %s (%s)", canary, stable, verdict.action, "; ".join(verdict.reasons)
        )
        if verdict.action != "wait":
            record = VerdictRecord(
                model=registry.name, decided_at=now, window_since=since, stable=evidence[0],
                canary=evidence[1], policy=policy, verdict=verdict,
            )  # fmt: skip
            save_record(registry.store, record)
            return record
        if registry.alias("canary") != canary:
            logger.info("v%d is no longer the canary: nothing left to judge", canary)
            return None
        time.sleep(settings.canary_poll_s)


@task
def publish_canary_verdict(record: VerdictRecord | None, model_name: str) -> None:
    """The verdict as an artifact: the same text `mlops explain` prints."""
    if record is None:
        return
    verdict: CanaryVerdict = record.verdict
    create_markdown_artifact(
        f"# Canary v{verdict.canary_version} vs v{verdict.stable_version}: "
        f"**{verdict.action.upper()}**\n\n```\n{explain(record)}\n```\n",
        key="canary-verdict",
        description=f"canary analysis of {model_name}",
    )
