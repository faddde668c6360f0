"""The deploy flow: a registered version goes to canary (or straight to champion if first)."""

from __future__ import annotations

from prefect import flow

from tasks.release import RolloutKind, resolve_version, roll_out
from tasks.settings import get_settings
from tasks.steps import open_registry, run_name
from tasks.targets import open_target


@flow(name="deploy", flow_run_name=run_name("deploy"))
def deploy(
    version: int | None = None,
    percent: int | None = None,
    reason: str = "registered",
    model_name: str | None = None,
) -> RolloutKind:
    """Serve `version` (default: the newest) to `percent`% of traffic next to the champion."""
    settings = get_settings(model_name=model_name, canary_percent=percent)
    registry = open_registry(settings)
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
