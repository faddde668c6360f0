"""The guard's watch: a promoted champion's labelled loss against the champion it replaced.

Runs after every promotion (`mlops.model.promoted` starts it). Reads the same serving logs and
labels as the canary analysis; each decided look is recorded under reports/<model>/guard/.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from prefect import get_run_logger

from tasks.decisions.guard import GuardPolicy, GuardVerdict, decide_guard
from tasks.registry.versions import ModelRegistry
from tasks.release.window import CanaryWindow, scoring_for
from tasks.runs import task


def _took_traffic(registry: ModelRegistry, version: int) -> tuple[datetime, datetime]:
    """When `version` first served (as canary or champion) and when it became champion."""
    moves = [m for m in registry.history() if m.to_version == version]
    served = [m.at for m in moves if m.alias in {"canary", "champion"}]
    promoted = [m.at for m in moves if m.alias == "champion"]
    now = datetime.now(UTC)
    return (min(served) if served else now), (max(promoted) if promoted else now)


def _save(registry: ModelRegistry, verdict: GuardVerdict) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    key = f"reports/{registry.name}/guard/{stamp}-v{verdict.champion}.json"
    registry.store.put_bytes(key, verdict.model_dump_json(indent=2).encode(), "application/json")
    return key


@task
def watch_champion(
    registry: ModelRegistry, version: int, policy: GuardPolicy
) -> GuardVerdict | None:
    """Look every `poll_s` until the guard decides or its window ends; None if nothing to guard."""
    logger = get_run_logger()
    champion, previous = registry.alias("champion"), registry.alias("previous")
    if champion != version or previous is None:
        logger.info("v%d is not a guarded champion (champion v%s, previous v%s): nothing to do",
                    version, champion, previous)  # fmt: skip
        return None
    first_served, promoted_at = _took_traffic(registry, version)
    since = first_served - timedelta(seconds=policy.baseline_s)
    window = CanaryWindow(
        registry.store, registry.name, since, scoring_for(registry.manifest(version))
    )
    while True:
        now = datetime.now(UTC)
        old, new = window.evidence(previous, version, now)
        elapsed = (now - promoted_at).total_seconds()
        verdict = decide_guard((previous, old.losses), (version, new.losses), elapsed, policy)
        logger.info("guard v%d vs v%d: %s (%s)", version, previous, verdict.action, verdict.reason)
        if verdict.action != "watch":
            _save(registry, verdict)
            return verdict
        if registry.alias("champion") != version:
            logger.info("v%d is no longer the champion: the guard stops", version)
            return None
        time.sleep(policy.poll_s)
