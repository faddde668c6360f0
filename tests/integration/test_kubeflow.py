"""The retrain pipeline on Kubeflow Pipelines: compiled, run for real with kfp.local, submitted.

`kfp.local` runs each component as a real subprocess of this virtualenv
(SubprocessRunner(use_venv=False)) against a real SeaweedFS: the components import and run the
project's task code and write a real model version to the registry. The S3 credentials reach the
subprocesses through the environment, standing in for the Kubernetes Secret a cluster would mount.

The HTTP submission drives the real `kfp.Client` against `tests/support/standins/kfp_api.py`, because
no Kubeflow Pipelines backend can run on this machine. What that does NOT prove: that a real KFP
backend schedules the spec (driver, launcher, Argo), that pods receive the Secret or that the image
imports the project, multi-user auth; see the stand-in's docstring.
"""

import io
import time
from collections.abc import Iterator
from pathlib import Path

import kfp.local
import pytest
import yaml
from pydantic import ValidationError

from infra.local_s3 import S3Server
from infra.processes import free_port
from tasks.data.synthetic import CorruptionSpec, generate_house_prices
from tasks.decisions.gate import GateVerdict
from tasks.kubeflow.client import (
    KfpApiError,
    KfpRunTimeout,
    KfpUnreachable,
    RetrainParams,
    SubmitOptions,
    submit_retrain_run,
)
from tasks.kubeflow.pipeline import PipelineConfig, build_retrain_pipeline, compile_pipeline
from tasks.registry.versions import ModelRegistry
from tasks.s3 import ObjectStore, connect
from tests.support.stack import settings_for
from tests.support.standins.kfp_api import API, KfpApiStandIn, serve

pytestmark = [
    pytest.mark.integration,
    # kfp.local warns that an image without "python" in its name may not run Python
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]

SECRET_ENV = {"MLOPS_S3_ACCESS_KEY", "MLOPS_S3_SECRET_KEY"}
FAST = SubmitOptions(poll_interval_s=0.05, connect_timeout_s=2)


def load_package(path: Path) -> tuple[dict, dict]:
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return pipeline, platform


def test_pipeline_compiles_with_components_parameters_and_secret(tmp_path: Path) -> None:
    config = PipelineConfig(image="registry.example/mlops:1.2.3", env={"MLOPS_BUCKET": "models"})
    pipeline, platform = load_package(compile_pipeline(tmp_path / "retrain.yaml", config))
    assert pipeline["pipelineInfo"]["name"] == "retrain"
    assert set(pipeline["components"]) == {"comp-validate-and-train", "comp-register-candidate"}
    inputs = pipeline["root"]["inputDefinitions"]["parameters"]
    assert {name: item["parameterType"] for name, item in inputs.items()} == {
        "data_uri": "STRING", "model_name": "STRING", "reason": "STRING",
    }  # fmt: skip
    assert "isOptional" not in inputs["data_uri"]
    outputs = pipeline["root"]["outputDefinitions"]["parameters"]
    assert {name: item["parameterType"] for name, item in outputs.items()} == {
        "version": "NUMBER_INTEGER", "gate_summary": "STRING",
    }  # fmt: skip
    tasks = pipeline["root"]["dag"]["tasks"]
    assert tasks["register-candidate"]["dependentTasks"] == ["validate-and-train"]
    assert all(not task["cachingOptions"].get("enableCache") for task in tasks.values())
    executors = pipeline["deploymentSpec"]["executors"]
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "registry.example/mlops:1.2.3"
        assert "pip install" not in " ".join(container["command"])  # the image has the project
        assert container["env"] == [{"name": "MLOPS_BUCKET", "value": "models"}]
        assert "from tasks.kubeflow.components import" in container["command"][-1]
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(secrets) == set(executors)
    for executor in secrets.values():
        (entry,) = executor["secretAsEnv"]
        assert entry["secretName"] == "mlops-s3"  # pragma: allowlist secret (a name)
        assert {pair["envVar"] for pair in entry["keyToEnv"]} == SECRET_ENV


def test_secrets_are_refused_as_plain_env() -> None:
    with pytest.raises(ValidationError, match="Kubernetes Secret"):
        PipelineConfig(env={"MLOPS_S3_SECRET_KEY": "hunter2"})  # pragma: allowlist secret


# -- kfp.local: the pipeline runs for real -------------------------------------------------------
@pytest.fixture
def store(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """The bucket, and the credentials in the environment the kfp.local subprocesses inherit."""
    monkeypatch.setenv("MLOPS_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("MLOPS_S3_SECRET_KEY", s3_server.secret_key)
    store = connect(settings_for(s3_server))
    store.ensure_bucket()
    return store


@pytest.fixture
def run_locally(s3_server: S3Server, tmp_path: Path) -> Iterator:
    """Run the pipeline with kfp.local; the endpoint travels as task env, like on a cluster."""

    def run(env: dict[str, str] | None = None, **params: str) -> dict:
        kfp.local.init(
            runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp")
        )
        config = PipelineConfig(env={"MLOPS_S3_ENDPOINT": s3_server.url, **(env or {})})
        return dict(build_retrain_pipeline(config)(**params).outputs)

    yield run
    kfp.local.config.LocalExecutionConfig.instance = None


def upload(store: ObjectStore, key: str, corruption: CorruptionSpec | None = None) -> str:
    frame = generate_house_prices(800, seed=7, corruption=corruption)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    store.put_bytes(key, buffer.getvalue().encode(), "text/csv")
    return f"s3://{store.bucket}/{key}"


def test_local_run_registers_a_version_and_enforces_the_gate(
    store: ObjectStore, run_locally, model_name: str, capsys: pytest.CaptureFixture
) -> None:
    data = upload(store, f"data/{model_name}/train.csv")
    outputs = run_locally(data_uri=data, model_name=model_name, reason="kfp local test")
    verdict = GateVerdict.model_validate_json(outputs["gate_summary"])
    assert verdict.passed and verdict.champion_version is None
    assert outputs["version"] == 1
    registry = ModelRegistry(store, model_name)
    (manifest,) = registry.versions()
    assert (manifest.version, manifest.reason) == (1, "kfp local test")
    assert (manifest.data.rows, manifest.data.source) == (800, data)
    assert manifest.metrics["r2"] == pytest.approx(verdict.checks[0].observed)
    _, model = registry.load(1)  # sha256 verified against the manifest
    assert model.predict(generate_house_prices(3, seed=1).drop(columns="price")).min() > 0

    capsys.readouterr()
    with pytest.raises(RuntimeError, match="register-candidate"):
        run_locally(env={"MLOPS_MIN_R2": "0.999"}, data_uri=data, model_name=model_name)
    assert "CandidateRefused: candidate refused by the quality gate: r2" in capsys.readouterr().out
    assert [m.version for m in registry.versions()] == [1]


def test_local_run_fails_on_bad_data_and_registers_nothing(
    store: ObjectStore, run_locally, model_name: str, capsys: pytest.CaptureFixture
) -> None:
    bad = CorruptionSpec(negative_size_share=0.2)
    data = upload(store, f"data/{model_name}/bad.csv", bad)
    with pytest.raises(RuntimeError, match="validate-and-train"):
        run_locally(data_uri=data, model_name=model_name)
    printed = capsys.readouterr().out
    assert "DataValidationError" in printed and "size_sqft" in printed
    assert ModelRegistry(store, model_name).versions() == []
    assert list(store.list_keys(f"staging/{model_name}/")) == []


# -- submission over HTTP to the stand-in KFP API ------------------------------------------------
PARAMS = RetrainParams(
    data_uri="s3://mlops/data/train.csv", model_name="house-price", reason="drift"
)


@pytest.fixture
def kfp_api() -> Iterator[tuple[KfpApiStandIn, str]]:
    standin = KfpApiStandIn()
    with serve(standin) as url:
        yield standin, url


def test_submit_sends_spec_and_parameters_and_waits_until_succeeded(kfp_api) -> None:
    standin, url = kfp_api
    run = submit_retrain_run(url, PARAMS, wait=True, timeout=30, options=FAST)
    (run_id,) = standin.runs
    assert (run.run_id, run.state, run.succeeded) == (run_id, "SUCCEEDED", True)
    assert run.url == f"{url}/#/runs/details/{run_id}"
    assert standin.calls("GET", f"{API}/healthz")
    (lookup,) = standin.calls("GET", f"{API}/experiments")
    assert '"stringValue": "retrain"' in lookup.query["filter"]
    (experiment,) = standin.experiments.values()
    (created,) = standin.calls("POST", f"{API}/runs")
    body = created.body
    assert body["experiment_id"] == experiment["experiment_id"]
    assert body["display_name"] == "retrain house-price (drift)"
    assert body["runtime_config"]["parameters"] == PARAMS.model_dump()
    spec = body["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "retrain"
    assert set(spec["components"]) == {"comp-validate-and-train", "comp-register-candidate"}
    secrets = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    assert "secretAsEnv" in secrets["deploymentSpec"]["executors"]["exec-validate-and-train"]
    assert len(standin.calls("GET", f"{API}/runs/{run_id}")) == 3  # PENDING, RUNNING, SUCCEEDED


def test_submit_without_wait_returns_the_pending_run_and_a_failed_run_is_reported(kfp_api) -> None:
    standin, url = kfp_api
    run = submit_retrain_run(url, PARAMS, wait=False, options=FAST)
    assert run.state == "PENDING" and not standin.calls("GET", f"{API}/runs/{run.run_id}")
    standin.states = ["RUNNING", "FAILED"]
    failed = submit_retrain_run(url, PARAMS, wait=True, timeout=30, options=FAST)
    assert (failed.state, failed.succeeded) == ("FAILED", False)
    assert len(standin.experiments) == 1  # the second submission reused the experiment


def test_waiting_times_out_on_a_run_that_never_finishes(kfp_api) -> None:
    standin, url = kfp_api
    standin.states = ["RUNNING"]
    started = time.monotonic()
    with pytest.raises(KfpRunTimeout, match=r"still RUNNING after 0\.5s") as caught:
        submit_retrain_run(url, PARAMS, wait=True, timeout=0.5, options=FAST)
    assert time.monotonic() - started < 10
    assert caught.value.run_id in standin.runs and caught.value.state == "RUNNING"


def test_unreachable_host_is_a_clear_error() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(KfpUnreachable, match=f"API at {host} is unreachable"):
        submit_retrain_run(host, PARAMS, options=FAST)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", f"{API}/runs", 500), ("GET", f"{API}/healthz", 403), ("POST", f"{API}/runs", 400)],
)
def test_http_errors_become_kfp_api_errors(kfp_api, method: str, path: str, status: int) -> None:
    standin, url = kfp_api
    standin.fail(method, path, status, "the stand-in says no")
    with pytest.raises(KfpApiError, match="the stand-in says no") as caught:
        submit_retrain_run(url, PARAMS, wait=True, timeout=5, options=FAST)
    assert caught.value.status == status
    assert not standin.runs
