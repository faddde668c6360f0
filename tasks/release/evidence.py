"""Canary evidence: the serving counters of both versions plus any labels that have arrived."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import numpy as np
import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.decisions.canary import CanaryVerdict, VersionEvidence, decide_canary
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.versions import ModelRegistry
from tasks.runs import task
from tasks.settings import Settings


class EvidenceUnavailable(RuntimeError):
    """The serving side cannot report per-version evidence."""


def canary_started_at(registry: ModelRegistry, version: int) -> datetime:
    """When the canary alias last moved to `version` (from the alias history)."""
    for move in reversed(registry.history()):
        if move.alias == "canary" and move.to_version == version:
            return move.at
    return datetime.now(UTC)


def label_errors(logs: pd.DataFrame) -> dict[int, list[float]]:
    """Absolute percentage error per version, on the logged rows whose truth has arrived."""
    if "label" not in logs or logs.empty:
        return {}
    known = logs.dropna(subset=["label"])
    known = known[known["label"] != 0]
    errors = (known["prediction"] - known["label"]).abs() / known["label"].abs()
    return {int(v): group.tolist() for v, group in errors.groupby(known["version"])}


def _evidence(version: int, snapshot: dict, labels: list[float], elapsed: float) -> VersionEvidence:
    return VersionEvidence(
        version=version,
        requests=snapshot["requests"],
        errors=snapshot["errors"],
        latency_ms_p50=snapshot["latency_ms_p50"] or 0.0,
        latency_ms_p95=snapshot["latency_ms_p95"] or 0.0,
        predictions=[p for p in snapshot["prediction_sample"] if np.isfinite(p)],
        abs_pct_errors=labels,
        elapsed_s=elapsed,
    )


def gather_evidence(
    settings: Settings, registry: ModelRegistry
) -> tuple[VersionEvidence, VersionEvidence]:
    """Both versions' evidence from the local model server's counters and the serving logs."""
    if settings.serving_target != "local":
        raise EvidenceUnavailable(
            "canary evidence on Kubernetes needs the inference-logger sink and metrics: not wired yet"
        )
    stats = httpx.get(f"{settings.serving_url}/mlops/v1/stats", timeout=10).json()
    stable, canary = stats["routing"]["stable_version"], stats["routing"]["canary_version"]
    if canary is None or stable is None:
        raise EvidenceUnavailable(f"no canary is being served (routing {stats['routing']})")
    since = canary_started_at(registry, canary)
    logs = read_serving_logs(registry.store, registry.name, since, datetime.now(UTC))
    errors = label_errors(logs)
    elapsed = (datetime.now(UTC) - since).total_seconds()
    snapshots = stats["versions"]
    return (
        _evidence(stable, snapshots[str(stable)], errors.get(stable, []), elapsed),
        _evidence(canary, snapshots[str(canary)], errors.get(canary, []), elapsed),
    )


@task
def watch_canary(settings: Settings, registry: ModelRegistry) -> CanaryVerdict:
    """Look at the evidence every poll until the decision is not "wait" (or the window ends)."""
    logger, policy = get_run_logger(), settings.canary
    deadline = time.monotonic() + policy.max_window_s
    while True:
        stable, canary = gather_evidence(settings, registry)
        verdict = decide_canary(stable, canary, policy)
        logger.info(
            "v%d vs v%d: %s (%s)",
            canary.version,
            stable.version,
            verdict.action,
            "; ".join(verdict.reasons),
        )
        if verdict.action != "wait":
            return verdict
        if time.monotonic() > deadline:
            return verdict.model_copy(
                update={
                    "action": "rollback",
                    "reasons": [
                        *verdict.reasons,
                        f"no decision within {policy.max_window_s:.0f}s",
                    ],
                }
            )
        time.sleep(settings.canary_poll_s)


@task
def publish_canary_verdict(verdict: CanaryVerdict, model_name: str) -> None:
    rows = "\n".join(
        f"| {c.name} | {c.status} | {c.observed} | {c.threshold} | {c.detail} |"
        for c in verdict.checks
    )
    create_markdown_artifact(
        f"# Canary v{verdict.canary_version} vs v{verdict.stable_version}: "
        f"**{verdict.action.upper()}**\n\n"
        + "\n".join(f"- {reason}" for reason in verdict.reasons)
        + f"\n\n| check | status | observed | threshold | detail |\n|---|---|---|---|---|\n{rows}\n"
        + f"\nEvidence: {verdict.evidence.model_dump()}\n",
        key="canary-verdict",
        description=f"canary analysis of {model_name}",
    )
