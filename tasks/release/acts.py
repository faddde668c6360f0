"""Release acts: put a version on canary, promote it, roll back — serving first, then aliases.

Every act changes what serves and then records it in the registry's aliases (and so in the
append-only history), and emits the matching event. Re-running an act that was cut short
converges: each reads the current aliases and serving state before it moves anything.

Acts on one model never interleave: each holds the registry's "release" lease from its first
read to its last alias move, and moves aliases by compare-and-swap. A promote and a rollback
racing on the same canary therefore leave one outcome: the second finds the canary gone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from tasks.decisions.rollout import RolloutKind, ServingState, plan_rollout
from tasks.events import emit_model_event
from tasks.registry.versions import Manifest, ModelRegistry, VersionNotFound
from tasks.release.target import ServingTarget
from tasks.runs import task

# A release act on Kubernetes waits for the InferenceService to be ready: minutes, not seconds.
RELEASE_WAIT_S = 900.0

if TYPE_CHECKING:
    from tasks.decisions.canary import CanaryVerdict


class ReleaseError(RuntimeError):
    """A release act cannot be carried out as asked; the message says why."""


def _log() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a flow; the module logger when an act is called by hand (CLI)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _emit(event: str, registry: ModelRegistry, payload: dict[str, object]) -> None:
    emit_model_event(event, registry.name, payload)


@task
def resolve_version(registry: ModelRegistry, version: int | None) -> Manifest:
    """The manifest of `version`, or of the newest complete version when None."""
    if version is not None:
        return registry.manifest(version)
    versions = registry.versions()
    if not versions:
        raise VersionNotFound(f"{registry.name} has no registered version to deploy")
    return versions[-1]


@task
def roll_out(
    registry: ModelRegistry, target: ServingTarget, manifest: Manifest, percent: int, reason: str
) -> RolloutKind:
    """Serve a first version outright; any later one as a canary next to the champion."""
    registry.load_bytes(manifest.version)  # verified before any traffic can reach it
    with registry.lock("release", RELEASE_WAIT_S):
        champion, canary = registry.alias("champion"), registry.alias("canary")
        kind = plan_rollout(champion, canary, manifest.version)
        if kind == "first":
            target.deploy_stable(manifest)
            registry.set_alias(
                "champion", manifest.version, f"first version: {reason}", expected=None
            )
        elif kind == "canary":
            if canary is not None:
                target.rollback_canary()  # a newer candidate replaces an unfinished canary
            target.start_canary(manifest, percent)
            registry.set_alias("canary", manifest.version, reason, expected=canary)
            payload = {"version": manifest.version, "percent": percent, "champion": champion}
            _emit("mlops.canary.started", registry, payload)
    _log().info("v%d: %s", manifest.version, kind)
    return kind


def _champion_before(registry: ModelRegistry, version: int) -> int | None:
    """The champion that `version` replaced, from the alias history."""
    for move in reversed(registry.history()):
        if move.alias == "champion" and move.to_version == version:
            return move.from_version
    return None


@task
def promote(
    registry: ModelRegistry,
    target: ServingTarget,
    reason: str,
    canary_version: int | None = None,
    accuracy_verified: bool = False,
) -> ServingState:
    """The canary becomes champion; the old champion stays ready as `previous`.

    With `canary_version`, only that canary is promoted: a verdict on v3 never promotes a v4
    that replaced it meanwhile. `accuracy_verified` travels in the event: without it, the guard
    is what checks the new champion's labelled loss.
    """
    with registry.lock("release", RELEASE_WAIT_S):
        canary, champion = registry.alias("canary"), registry.alias("champion")
        if canary is None:
            raise ReleaseError(f"{registry.name} has no canary to promote")
        if canary_version is not None and canary != canary_version:
            raise ReleaseError(f"the canary is now v{canary}, not v{canary_version}: not promoting")
        state = target.promote_canary()
        if champion is not None:
            registry.set_alias("previous", champion, f"replaced by v{canary}")
        registry.set_alias("champion", canary, reason, expected=champion)
        registry.set_alias("canary", None, f"promoted: {reason}", expected=canary)
    _emit(
        "mlops.model.promoted",
        registry,
        {
            "version": canary,
            "previous": champion,
            "reason": reason,
            "accuracy_verified": accuracy_verified,
        },
    )
    return state


@task
def roll_back(
    registry: ModelRegistry,
    target: ServingTarget,
    reason: str,
    canary_version: int | None = None,
    canary_only: bool = False,
) -> ServingState:
    """Take the canary out of traffic; with no canary, put `previous` back as champion.

    With `canary_version`, only that canary is rolled back, and only if it is still the canary:
    two parties rolling back the same canary (the analysis and the failover automation) must
    not roll back the champion as well. With `canary_only` (a failed analysis), no canary means
    nothing to do: an analysis that failed, say because the canary was already gone, never
    rolls back the champion.
    """
    with registry.lock("release", RELEASE_WAIT_S):
        canary, champion = registry.alias("canary"), registry.alias("champion")
        if canary_version is not None and canary != canary_version:
            _log().info("v%d is no longer the canary: not rolling back", canary_version)
            return target.state()
        if canary is None and canary_only:
            _log().info("no canary to roll back; the champion v%s stays", champion)
            return target.state()
        if canary is not None:
            state = target.rollback_canary()
            registry.set_alias("canary", None, f"rolled back: {reason}", expected=canary)
            payload = {"from_version": canary, "to_version": champion, "reason": reason}
        else:
            state, payload = _restore_previous(registry, target, champion, reason)
    _emit("mlops.model.rolled-back", registry, payload)
    return state


@task
def demote_champion(
    registry: ModelRegistry, target: ServingTarget, reason: str, champion_version: int
) -> ServingState:
    """Put `previous` back in place of champion `champion_version`, if it still is the champion.

    The guard's act. A canary running on top of the demoted champion is taken out first: it was
    judged against a baseline now known to be bad. A re-run finds another champion and does nothing.
    """
    with registry.lock("release", RELEASE_WAIT_S):
        champion, canary = registry.alias("champion"), registry.alias("canary")
        if champion != champion_version:
            _log().info("v%d is no longer the champion (v%s is): nothing to demote",
                        champion_version, champion)  # fmt: skip
            return target.state()
        if canary is not None:
            target.rollback_canary()
            registry.set_alias("canary", None, f"champion v{champion} demoted", expected=canary)
        state, payload = _restore_previous(registry, target, champion, reason)
    _emit("mlops.model.rolled-back", registry, payload)
    return state


def _restore_previous(
    registry: ModelRegistry, target: ServingTarget, champion: int | None, reason: str
) -> tuple[ServingState, dict[str, object]]:
    """No canary to take out: put `previous` back as champion (called under the lease)."""
    previous = registry.alias("previous")
    if previous is None or champion is None:
        raise ReleaseError(
            f"{registry.name}: nothing to roll back to (no canary, no previous version)"
        )
    before = _champion_before(registry, previous)  # read before the move rewrites history
    state = target.deploy_stable(registry.manifest(previous))
    registry.set_alias("champion", previous, f"rolled back: {reason}", expected=champion)
    registry.set_alias("previous", before, "after rollback", expected=previous)
    return state, {"from_version": champion, "to_version": previous, "reason": reason}


@task
def act_on_verdict(verdict: CanaryVerdict, registry: ModelRegistry, target: ServingTarget) -> str:
    """Carry out the canary verdict: promote, roll back, or leave the canary running."""
    reason = "; ".join(verdict.reasons)
    if verdict.action == "promote":
        promote.fn(registry, target, reason, verdict.canary_version, verdict.accuracy_verified)
    elif verdict.action == "rollback":
        roll_back.fn(registry, target, reason, verdict.canary_version)
    return verdict.action
