"""Prefect task that hands the retrain to Kubeflow Pipelines and records the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.artifacts import create_markdown_artifact

from tasks.registry.versions import Manifest, ModelRegistry
from tasks.runs import task
from tasks.settings import Settings

if TYPE_CHECKING:
    from tasks.kubeflow.client import KfpRun, RetrainParams


class KubeflowRunFailed(RuntimeError):
    """The KFP run did not end with a registered version."""


def _record(run: KfpRun, params: RetrainParams) -> None:
    create_markdown_artifact(
        f"# Kubeflow retrain run\n\n| field | value |\n|---|---|\n| run id | `{run.run_id}` |\n"
        f"| state | {run.state} |\n| data | `{params.data_uri}` |\n| reason | {params.reason} |\n"
        f"\n[open the run]({run.url})\n",
        key="kubeflow-run",
        description=f"KFP run {run.run_id}",
    )


@task
def retrain_on_kubeflow(
    settings: Settings, registry: ModelRegistry, data: str | None, reason: str
) -> Manifest:
    """Submit the retrain pipeline, wait for it, and return the version it registered."""
    # kfp is imported here, not at the top: a retrain that runs locally never pays for it.
    from tasks.kubeflow.client import RetrainParams, SubmitOptions, submit_retrain_run

    known = {manifest.version for manifest in registry.versions()}
    params = RetrainParams(
        data_uri=data or settings.data_uri or "", model_name=registry.name, reason=reason
    )
    options = SubmitOptions(poll_interval_s=settings.kfp_poll_s)
    run = submit_retrain_run(
        settings.kfp_host or "", params, wait=True, timeout=settings.kfp_timeout_s, options=options
    )
    _record(run, params)
    if not run.succeeded:
        raise KubeflowRunFailed(f"KFP run {run.run_id} ended {run.state}: {run.url}")
    new = [m for m in registry.versions() if m.version not in known and m.reason == reason]
    if not new:
        raise KubeflowRunFailed(f"KFP run {run.run_id} succeeded but registered no version")
    return new[-1]
