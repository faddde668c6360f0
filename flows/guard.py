"""The guard flow: after a promotion, watch the new champion's labelled loss and undo it on evidence."""

from __future__ import annotations

from prefect import flow

from tasks.decisions.guard import GuardVerdict
from tasks.registry.configs import configured
from tasks.registry.versions import open_registry
from tasks.release.acts import demote_champion
from tasks.release.guard import watch_champion
from tasks.release.target import open_target
from tasks.runs import run_name
from tasks.settings import get_settings


@flow(name="guard", flow_run_name=run_name("guard"))
def guard(
    model_name: str | None = None, version: int | None = None, window_s: float | None = None
) -> GuardVerdict | None:
    """Compare champion `version` (default: the current one) with the champion it replaced as
    labels arrive; roll back to it if the new one is shown worse. A re-run converges: a version
    that is no longer champion has nothing to guard."""
    settings = get_settings(model_name=model_name)
    registry = open_registry(settings, create_bucket=True)
    settings, _ = configured(settings, registry)  # the model\'s stored policies
    policy = settings.guard
    if window_s is not None:
        policy = type(policy).model_validate({**policy.model_dump(), "window_s": window_s})
    verdict = watch_champion(registry, version or registry.alias("champion") or 0, policy)
    if verdict is not None and verdict.action == "rollback":
        reason = f"guard: {verdict.reason}"
        demote_champion(registry, open_target(settings), reason, verdict.champion)
    return verdict


if __name__ == "__main__":
    guard()
