"""The deploy flow: a registered version goes to canary (or straight to champion if first)."""

from __future__ import annotations

from prefect import flow

from tasks.decisions.rollout import RolloutKind
from tasks.registry.versions import open_registry
from tasks.release.acts import resolve_version, roll_out
from tasks.release.target import open_target
from tasks.runs import run_name
from tasks.settings import get_settings


@flow(name="deploy", flow_run_name=run_name("deploy"))
def deploy(
    version: int | None = None,
    percent: int | None = None,
    reason: str = "registered",
    model_name: str | None = None,
) -> RolloutKind:
    """Serve `version` (default: the newest) to `percent`% of traffic next to the champion."""
    settings = get_settings(model_name=model_name, canary_percent=percent)
    registry = open_registry(settings, create_bucket=True)
    manifest = resolve_version(registry, version)
    target = open_target(settings)
    return roll_out(registry, target, manifest, settings.canary_percent, reason)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Put a registered version on canary.")
    parser.add_argument("--version", type=int)
    parser.add_argument("--percent", type=int)
    arguments = parser.parse_args()
    deploy(version=arguments.version, percent=arguments.percent, reason="by hand")
