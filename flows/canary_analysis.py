"""The canary-analysis flow: collect evidence, decide, act — promote or roll back by itself."""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed, State

from tasks.registry.configs import configured
from tasks.registry.leases import LeaseBusy
from tasks.registry.versions import open_registry
from tasks.release.acts import act_on_verdict
from tasks.release.evidence import publish_canary_verdict, watch_canary
from tasks.release.records import VerdictRecord
from tasks.release.target import open_target
from tasks.runs import run_name
from tasks.settings import get_settings

# How long a second analysis of the same model waits for the first before it stands down: longer
# than a lease's 20 s life, so the claim of a holder that died has expired by then and only a
# live analysis (which renews its claim) makes another stand down; far shorter than any window.
SOLE_ANALYSIS_WAIT_S = 30.0


@flow(name="canary-analysis", flow_run_name=run_name("canary-analysis"))
def canary_analysis(
    model_name: str | None = None, max_wait_s: float | None = None
) -> VerdictRecord | State | None:
    """Watch the live canary until the evidence decides, then promote or roll back.

    One analysis per model at a time, held by a lease in the model's registry: a second one
    (the worker's and `mlops train`'s, or a repeated event) ends "Skipped" while the first
    watches, and other models' analyses run beside it (the deployment's concurrency slots are
    shared by every model, so they cannot be what keeps one model's analyses apart).
    The verdict and its inputs are stored under reports/<model>/canary/ (`mlops explain`).
    """
    settings = get_settings(model_name=model_name, canary_max_wait_s=max_wait_s)
    registry = open_registry(settings, create_bucket=True)
    settings, _ = configured(settings, registry)  # the model\'s stored policies
    try:
        with registry.lock("canary-analysis", SOLE_ANALYSIS_WAIT_S):
            record = watch_canary(settings, registry)
            publish_canary_verdict(record, settings.model_name)
            if record is not None:
                act_on_verdict(record.verdict, registry, open_target(settings))
    except LeaseBusy:
        message = f"another canary analysis of {settings.model_name} is watching its canary"
        return Completed(name="Skipped", message=message)
    return record


if __name__ == "__main__":
    canary_analysis()
