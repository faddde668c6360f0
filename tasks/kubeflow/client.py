"""Talking to the Kubeflow Pipelines API: submit a retrain run, wait for it, name what failed.

Runs are submitted with `kfp.Client` (the v2beta1 REST API) after a bounded health probe.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import kfp
import urllib3
from kfp_server_api.exceptions import ApiException
from pydantic import BaseModel, ConfigDict, Field

from tasks.kubeflow.pipeline import MODEL_NAME, compile_pipeline
from tasks.kubeflow.pods import PipelineConfig

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})


class KubeflowError(RuntimeError):
    """Talking to the Kubeflow Pipelines API failed; the message says where and why."""


class KfpUnreachable(KubeflowError):
    """The KFP API server did not answer (refused, DNS, TLS, timeout)."""


class KfpApiError(KubeflowError):
    """The KFP API server answered with an HTTP error (4xx/5xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class KfpRunTimeout(KubeflowError):
    """The run did not reach a terminal state in time (it may still be running)."""

    def __init__(self, message: str, run_id: str, state: str) -> None:
        super().__init__(message)
        self.run_id, self.state = run_id, state


class RetrainParams(BaseModel):
    """The pipeline's parameters."""

    model_config = ConfigDict(frozen=True)

    data_uri: str = Field(
        pattern=r"^s3://[^/]+/datasets/.+\.parquet$", description="the training-set snapshot"
    )
    config_uri: str = Field(
        pattern=r"^s3://[^/]+/.+\.json$", description="the run configuration (run_config.py)"
    )
    model_name: str = Field(MODEL_NAME.default, pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    reason: str = Field("manual", min_length=1, description="why this retrain runs")


class SubmitOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    pipeline: PipelineConfig = Field(description="the pods' pinned image, ConfigMap, Secrets")
    experiment: str = Field("retrain", min_length=1, description="KFP experiment of the runs")
    poll_interval_s: float = Field(5.0, gt=0, description="seconds between run-state polls")
    connect_timeout_s: float = Field(10.0, gt=0, description="health probe timeout")


@dataclass(frozen=True)
class KfpRun:
    run_id: str
    state: str
    url: str

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


def submit_retrain_run(
    host: str,
    params: RetrainParams,
    options: SubmitOptions,
    *,
    wait: bool = False,
    timeout: float = 3600.0,
) -> KfpRun:
    """Submit one retrain run to the KFP API at `host`; if `wait`, poll until it ends."""
    host = host.rstrip("/")
    client = connect_kfp(host, options.connect_timeout_s)
    with tempfile.TemporaryDirectory(prefix="kfp-retrain-") as work:
        package = compile_pipeline(Path(work) / "retrain.yaml", options.pipeline)
        result = _call(
            host,
            "create the run",
            client.create_run_from_pipeline_package,
            str(package),
            arguments=params.model_dump(),
            run_name=f"retrain {params.model_name} ({params.reason})",
            experiment_name=options.experiment,
        )
    run = KfpRun(result.run_id, result.run_info.state or "PENDING", run_url(host, result.run_id))
    return wait_for_run(client, run, timeout, options.poll_interval_s) if wait else run


def connect_kfp(host: str, timeout: float = 10.0) -> kfp.Client:
    """A kfp.Client for `host`, after a bounded health probe (kfp.Client's own has no timeout)."""
    try:
        response = httpx.get(f"{host}/apis/v2beta1/healthz", timeout=timeout)
    except httpx.HTTPError as error:
        raise KfpUnreachable(f"Kubeflow Pipelines API at {host} is unreachable: {error}") from error
    if response.status_code >= 400:
        raise KfpApiError(
            f"Kubeflow Pipelines API at {host} failed its health check: "
            f"HTTP {response.status_code} {response.text[:300]}",
            response.status_code,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2+"
        return _call(host, "connect", kfp.Client, host)


def wait_for_run(client: kfp.Client, run: KfpRun, timeout: float, poll_interval: float) -> KfpRun:
    """Poll the run until it reaches a terminal state; KfpRunTimeout after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    host = run.url.split("/#/", 1)[0]
    while True:
        state = _call(host, f"read run {run.run_id}", client.get_run, run.run_id).state
        state = state or "RUNTIME_STATE_UNSPECIFIED"
        if state in TERMINAL_STATES:
            return replace(run, state=state)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KfpRunTimeout(
                f"run {run.run_id} still {state} after {timeout:g}s: {run.url}", run.run_id, state
            )
        time.sleep(min(poll_interval, remaining))


def run_url(host: str, run_id: str) -> str:
    """The run's page in the KFP UI (the link kfp.Client prints)."""
    return f"{host}/#/runs/details/{run_id}"


def _call(host: str, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except ApiException as error:
        if not error.status:  # kfp_server_api reports TLS failures as status 0
            raise KfpUnreachable(f"{host}: could not {what}: {error.reason}") from error
        body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else error.body
        raise KfpApiError(
            f"{host}: could not {what}: HTTP {error.status} {error.reason}: {str(body)[:500]}",
            error.status,
        ) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise KfpUnreachable(f"{host}: could not {what}, server unreachable: {error}") from error
