"""The drift check flow: the champion's training data against the latest window; drift → event."""

from __future__ import annotations

from prefect import flow

from tasks.decisions.drift import DriftVerdict
from tasks.drift.stages import (
    announce_drift,
    champion_manifest,
    judge_window,
    load_current,
    load_reference,
    publish_drift,
    store_reports,
)
from tasks.registry.versions import model_names, open_registry
from tasks.runs import run_name
from tasks.settings import get_settings
from tasks.training.stages import model_setup


@flow(name="drift-check", flow_run_name=run_name("drift-check"))
def drift_check(
    data: str | None = None, window_hours: float = 24.0, model_name: str | None = None
) -> DriftVerdict:
    """Compare `data` (default: the serving logs of the last window) with the champion's data.

    On drift, `mlops.drift.detected` carries the summary and, when `data` has the target, the
    batch to retrain on; the retrain deployment is triggered by it.
    """
    settings = get_settings(model_name=model_name)
    registry = open_registry(settings, create_bucket=True)
    settings, contract = model_setup(settings, registry)  # the model's stored configuration
    champion = champion_manifest(registry)
    reference = load_reference(champion, registry)
    current = load_current(data, registry, contract, window_hours)
    report = judge_window(reference, current, contract, settings.drift)
    report_url = store_reports(report, registry, champion)
    publish_drift(report, report_url, settings.model_name)
    announce_drift(report, champion, data, report_url)
    return report.verdict


class DriftChecksFailed(RuntimeError):
    """A model's daily drift check failed; the others were still checked."""


@flow(name="drift-check", flow_run_name="drift-daily: every model with a champion")
def drift_daily(window_hours: float = 24.0) -> dict[str, str]:
    """The daily check: every model in the registry with a champion gets its own drift check of
    its serving logs over the window (a subflow run each, announcing its own drift). One model's
    failure does not skip the others; it fails this run once all were checked."""
    settings = get_settings()
    store = open_registry(settings, create_bucket=True).store
    statuses, failed = {}, {}
    for name in model_names(store):
        if open_registry(get_settings(model_name=name), store).alias("champion") is None:
            continue  # nothing served yet: nothing to compare
        try:
            verdict = drift_check(window_hours=window_hours, model_name=name)
            statuses[name] = verdict.status
        except Exception as error:  # one model's bad day must not hide the others'
            failed[name] = f"{type(error).__name__}: {error}"
    if failed:
        problems = "; ".join(f"{name}: {problem}" for name, problem in failed.items())
        raise DriftChecksFailed(
            f"{len(failed)} of {len(failed) + len(statuses)} failed: {problems}"
        )
    return statuses


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Check the latest data for drift.")
    parser.add_argument("--data", help="a CSV batch; default: the serving logs of the window")
    parser.add_argument("--window-hours", type=float, default=24.0)
    arguments = parser.parse_args()
    drift_check(data=arguments.data, window_hours=arguments.window_hours)
