"""The canary-analysis flow: collect evidence, decide, act — promote or roll back by itself."""

from __future__ import annotations

from prefect import flow

from tasks.registry.configs import configured
from tasks.registry.versions import open_registry
from tasks.release.acts import act_on_verdict
from tasks.release.evidence import publish_canary_verdict, watch_canary
from tasks.release.records import VerdictRecord
from tasks.release.target import open_target
from tasks.runs import run_name
from tasks.settings import get_settings


@flow(name="canary-analysis", flow_run_name=run_name("canary-analysis"))
def canary_analysis(
    model_name: str | None = None, max_wait_s: float | None = None
) -> VerdictRecord | None:
    """Watch the live canary until the evidence decides, then promote or roll back.

    The verdict and its inputs are stored under reports/<model>/canary/ (`mlops explain`).
    """
    settings = get_settings(model_name=model_name, canary_max_wait_s=max_wait_s)
    registry = open_registry(settings, create_bucket=True)
    settings, _ = configured(settings, registry)  # the model\'s stored policies
    record = watch_canary(settings, registry)
    publish_canary_verdict(record, settings.model_name)
    if record is not None:
        act_on_verdict(record.verdict, registry, open_target(settings))
    return record


if __name__ == "__main__":
    canary_analysis()
