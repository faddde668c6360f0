"""Prefect task that hands the retrain to Kubeflow Pipelines and records the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.artifacts import create_markdown_artifact

from tasks.data.contract import DataContract
from tasks.registry.versions import Manifest, ModelRegistry
from tasks.runs import task
from tasks.settings import Settings

if TYPE_CHECKING:
    from tasks.kubeflow.client import KfpRun, RetrainParams, SubmitOptions


class KubeflowRunFailed(RuntimeError):
    """The KFP run did not end with a registered version."""


def _record(run: KfpRun, params: RetrainParams, options: SubmitOptions) -> None:
    create_markdown_artifact(
        f"# Kubeflow retrain run\n\n| field | value |\n|---|---|\n| run id | `{run.run_id}` |\n"
        f"| state | {run.state} |\n| data | `{params.data_uri}` |\n"
        f"| configuration | `{params.config_uri}` |\n| image | `{options.pipeline.image}` |\n"
        f"| reason | {params.reason} |\n\n[open the run]({run.url})\n",
        key="kubeflow-run",
        description=f"KFP run {run.run_id}",
    )


@task
def retrain_on_kubeflow(
    training_set: str,
    contract: DataContract,
    settings: Settings,
    registry: ModelRegistry,
    reason: str,
) -> Manifest:
    """Train on the snapshot `training_set` under this run's contract and settings as a KFP run,
    wait for it, and return the version it registered."""
    # kfp is imported here, not at the top: a retrain that runs locally never pays for it.
    from tasks.kubeflow.client import RetrainParams, SubmitOptions, submit_retrain_run
    from tasks.kubeflow.pods import pipeline_config
    from tasks.kubeflow.run_config import RunConfig, publish_run_config

    # First: an unpinned image stops the run before anything is written or submitted.
    pipeline = pipeline_config(settings.image)
    options = SubmitOptions(pipeline=pipeline, poll_interval_s=settings.kfp_poll_s)
    config_uri = publish_run_config(registry.store, registry.name, RunConfig.of(settings, contract))
    params = RetrainParams(
        data_uri=training_set, config_uri=config_uri, model_name=registry.name, reason=reason
    )
    known = {manifest.version for manifest in registry.versions()}
    run = submit_retrain_run(
        settings.kfp_host or "", params, options, wait=True, timeout=settings.kfp_timeout_s
    )
    _record(run, params, options)
    if not run.succeeded:
        raise KubeflowRunFailed(f"KFP run {run.run_id} ended {run.state}: {run.url}")
    new = [m for m in registry.versions() if m.version not in known and m.reason == reason]
    if not new:
        raise KubeflowRunFailed(f"KFP run {run.run_id} succeeded but registered no version")
    return new[-1]
