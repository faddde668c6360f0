"""The canary-analysis flow: collect evidence, decide, act — promote or roll back by itself."""

from __future__ import annotations

from prefect import flow

from tasks.canary import CanaryPolicy, CanaryVerdict
from tasks.canary_watch import publish_canary_verdict, watch_canary
from tasks.release import act_on_verdict
from tasks.settings import get_settings
from tasks.steps import open_registry, run_name
from tasks.targets import open_target


@flow(name="canary-analysis", flow_run_name=run_name("canary-analysis"))
def canary_analysis(
    model_name: str | None = None, max_wait_s: float | None = None
) -> CanaryVerdict:
    """Watch the live canary until the evidence decides, then promote or roll back."""
    settings = get_settings(model_name=model_name, canary_max_wait_s=max_wait_s)
    registry = open_registry(settings)
    target = open_target(settings)
    policy = CanaryPolicy(max_window_s=settings.canary_max_wait_s)
    verdict = watch_canary(settings, registry, policy)
    publish_canary_verdict(verdict, settings.model_name)
    act_on_verdict(verdict, registry, target)
    return verdict


if __name__ == "__main__":
    canary_analysis()
