"""The canary-analysis flow: collect evidence, decide, act — promote or roll back by itself."""

from __future__ import annotations

from prefect import flow

from tasks.decisions.canary import CanaryVerdict
from tasks.registry.versions import open_registry
from tasks.release.acts import act_on_verdict
from tasks.release.evidence import publish_canary_verdict, watch_canary
from tasks.release.target import open_target
from tasks.runs import run_name
from tasks.settings import get_settings


@flow(name="canary-analysis", flow_run_name=run_name("canary-analysis"))
def canary_analysis(
    model_name: str | None = None, max_wait_s: float | None = None
) -> CanaryVerdict:
    """Watch the live canary until the evidence decides, then promote or roll back."""
    settings = get_settings(model_name=model_name, canary_max_wait_s=max_wait_s)
    registry = open_registry(settings, create_bucket=True)
    target = open_target(settings)
    verdict = watch_canary(settings, registry)
    publish_canary_verdict(verdict, settings.model_name)
    act_on_verdict(verdict, registry, target)
    return verdict


if __name__ == "__main__":
    canary_analysis()
