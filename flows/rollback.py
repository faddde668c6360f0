"""The rollback flow: back to the stable version (or to `previous`) in one step."""

from __future__ import annotations

from prefect import flow

from tasks.decisions.rollout import ServingState
from tasks.registry.versions import open_registry
from tasks.release.acts import demote_champion, roll_back
from tasks.release.target import open_target
from tasks.runs import run_name
from tasks.settings import get_settings


@flow(name="rollback", flow_run_name=run_name("rollback"))
def rollback(
    reason: str = "by hand",
    model_name: str | None = None,
    canary_version: int | None = None,
    canary_only: bool = False,
    champion_version: int | None = None,
) -> ServingState:
    """Take the canary out of traffic, or, with no canary, restore the previous champion.

    With `canary_version` (as the failover automation passes it), only that canary, if it still is;
    with `canary_only` (as the failed-analysis automation passes it), only a canary, never the
    champion; with `champion_version` (the guard's verdict), put `previous` back in place of that
    champion, if it still is the champion.
    """
    settings = get_settings(model_name=model_name)
    registry = open_registry(settings, create_bucket=True)
    target = open_target(settings)
    if champion_version is not None:
        return demote_champion(registry, target, reason, champion_version)
    return roll_back(registry, target, reason, canary_version, canary_only)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Roll back the served model.")
    parser.add_argument("--reason", default="by hand")
    rollback(reason=parser.parse_args().reason)
