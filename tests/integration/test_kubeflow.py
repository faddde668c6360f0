"""The retrain pipeline on Kubeflow Pipelines: run for real with kfp.local, and submitted.

`kfp.local` runs each component as a real subprocess of this virtualenv
(SubprocessRunner(use_venv=False)) against a real SeaweedFS: the components import and run the
project's task code and write a real, signed model version to the registry. kfp.local ignores the
Kubernetes platform spec, so the test plays the kubelet: it resolves the compiled package's
ConfigMap and Secret entries against this machine's values and gives the subprocesses exactly
that environment (every other MLOPS_* variable removed). A package that forgot a variable fails
here as a pod would.

The HTTP submission drives the real `kfp.Client` against `tests/support/standins/kfp_api.py`, because
no Kubeflow Pipelines backend can run on this machine. What that does NOT prove: that a real KFP
backend schedules the spec (driver, launcher, Argo), that the ConfigMap and Secrets exist in the
run's namespace, that the image can be pulled and imports the project, multi-user auth; see the
stand-in's docstring.
"""

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import kfp.local
import pandas as pd
import pytest
import yaml

from infra.local_s3 import S3Server
from infra.processes import free_port
from tasks.data.contract import DataContract
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
from tasks.kubeflow.components import CandidateRefused, register_staged, train_and_judge
from tasks.kubeflow.pipeline import build_retrain_pipeline, compile_pipeline
from tasks.kubeflow.pods import PipelineConfig
from tasks.kubeflow.run_config import (
    RunConfig,
    RunConfigMismatch,
    publish_run_config,
    read_run_config,
)
from tasks.registry.datasets import write_snapshot
from tasks.registry.versions import IntegrityError, ModelRegistry
from tasks.s3 import ObjectStore, connect
from tasks.settings import get_settings
from tests.support.stack import settings_for
from tests.support.standins.kfp_api import API, KfpApiStandIn, serve

pytestmark = [
    pytest.mark.integration,
    # kfp.local warns that an image without "python" in its name may not run Python
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]

CONFIG = PipelineConfig(image="ghcr.io/selfheal-mlops/selfheal-mlops:3f2c1d0")
FAST = SubmitOptions(pipeline=CONFIG, poll_interval_s=0.05, connect_timeout_s=2)
Cluster = dict[tuple[str, str], dict[str, str]]


@pytest.fixture
def manifest_key() -> str:
    """This test's manifest signing key: 64 hex characters, made now, never on disk."""
    return secrets.token_hex(32)


@pytest.fixture
def store(s3_server: S3Server) -> ObjectStore:
    store = connect(settings_for(s3_server))
    store.ensure_bucket()
    return store


@pytest.fixture
def cluster(s3_server: S3Server, store: ObjectStore, manifest_key: str) -> Cluster:
    """The cluster's ConfigMap and Secrets (infra/k8s) with this machine's values."""
    return {
        ("ConfigMap", "mlops-flow-settings"): {
            "MLOPS_S3_ENDPOINT": s3_server.url,
            "MLOPS_BUCKET": store.bucket,
            "MLOPS_MODEL_NAME": "house-price",
            "MLOPS_SERVING_TARGET": "kubernetes",
        },
        ("Secret", "mlops-s3-training"): {
            "MLOPS_S3_ACCESS_KEY": s3_server.access_key,
            "MLOPS_S3_SECRET_KEY": s3_server.secret_key,
        },
        ("Secret", "mlops-manifest-key"): {"MLOPS_MANIFEST_KEY": manifest_key},
    }


def pod_environment(package: Path, cluster: Cluster) -> dict[str, str]:
    """What a kubelet would give each task: its configMapAsEnv and secretAsEnv entries resolved
    against `cluster` (the same for every task, as kfp.local can give only one)."""
    _, platform = yaml.safe_load_all(package.read_text())
    resolved = []
    for config in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        env = {}
        for kind, field, key in (("ConfigMap", "configMap", "configMapKey"),
                                 ("Secret", "secret", "secretKey")):  # fmt: skip
            for entry in config.get(f"{field}AsEnv", []):
                values = cluster[(kind, entry[f"{field}Name"])]
                env |= {pair["envVar"]: values[pair[key]] for pair in entry["keyToEnv"]}
        resolved.append(env)
    assert all(env == resolved[0] for env in resolved)
    return resolved[0]


def use_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Exactly `env` of the MLOPS_* variables, here and in the processes started from here."""
    for name in [name for name in os.environ if name.startswith("MLOPS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def run_locally(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Run the pipeline with kfp.local, its tasks' environment resolved from the package."""

    def run(**params: str) -> dict:
        package = compile_pipeline(tmp_path / "retrain.yaml", CONFIG)
        use_environment(monkeypatch, pod_environment(package, cluster))
        kfp.local.init(
            runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp")
        )
        return dict(build_retrain_pipeline(CONFIG)(**params).outputs)

    yield run
    kfp.local.config.LocalExecutionConfig.instance = None


def prepare(
    store: ObjectStore, contract: DataContract, model: str, frame: pd.DataFrame, **overrides
) -> dict[str, str]:
    """What the retrain flow hands the pipeline: a snapshot and a run configuration in S3."""
    data_uri, _ = write_snapshot(store, model, frame)
    config = RunConfig.of(get_settings(model_name=model, **overrides), contract)
    config_uri = publish_run_config(store, model, config)
    return {"data_uri": data_uri, "config_uri": config_uri, "model_name": model}


def test_local_run_registers_a_signed_version_under_the_published_configuration(
    store: ObjectStore,
    run_locally,
    contract: DataContract,
    model_name: str,
    manifest_key: str,
    capsys: pytest.CaptureFixture,
) -> None:
    # A snapshot of labelled traffic keeps its provenance columns beside the contract's.
    frame = generate_house_prices(800, seed=7).assign(origin="serving", row=range(800))
    params = prepare(store, contract, model_name, frame)
    outputs = run_locally(**params, reason="kfp local test")
    verdict = GateVerdict.model_validate_json(outputs["gate_summary"])
    assert verdict.passed and verdict.champion_version is None
    assert outputs["version"] == 1
    registry = ModelRegistry(store, model_name, manifest_key.encode())
    (manifest,) = registry.versions()
    assert (manifest.version, manifest.reason) == (1, "kfp local test")
    assert (manifest.data.rows, manifest.data.source) == (800, params["data_uri"])
    assert params["data_uri"].endswith(f"/{manifest.data.digest}.parquet")
    assert manifest.contract == {"name": contract.name, "digest": contract.digest()}
    (baseline,) = [check for check in verdict.checks if check.name == "mae vs baseline"]
    assert manifest.metrics["mae"] == pytest.approx(baseline.observed)
    _, model = registry.load(1)  # signature and sha256 verified
    assert model.predict(generate_house_prices(3, seed=1).drop(columns="price")).min() > 0
    stranger = ModelRegistry(store, model_name, secrets.token_hex(32).encode())
    with pytest.raises(IntegrityError, match="signed with key"):
        stranger.manifest(1)

    # The gate is the published configuration's: the pods' environment holds no gate setting.
    strict = prepare(store, contract, model_name, frame, gate={"min_r2": 0.999})
    capsys.readouterr()
    with pytest.raises(RuntimeError, match="register-candidate"):
        run_locally(**strict)
    assert "CandidateRefused: candidate refused by the quality gate: r2" in capsys.readouterr().out
    assert [m.version for m in registry.versions()] == [1]


def test_local_run_fails_on_bad_data_and_registers_nothing(
    store: ObjectStore,
    run_locally,
    contract: DataContract,
    model_name: str,
    capsys: pytest.CaptureFixture,
) -> None:
    bad = generate_house_prices(800, seed=7, corruption=CorruptionSpec(negative_size_share=0.2))
    params = prepare(store, contract, model_name, bad)
    with pytest.raises(RuntimeError, match="validate-and-train"):
        run_locally(**params)
    printed = capsys.readouterr().out
    assert "DataValidationError" in printed and "size_sqft" in printed
    assert ModelRegistry(store, model_name, secrets.token_hex(32).encode()).versions() == []
    staged = [k for k in store.list_keys(f"staging/{model_name}/") if "/configs/" not in k]
    assert staged == []


def test_a_run_configuration_is_read_back_only_as_published(
    store: ObjectStore, contract: DataContract, model_name: str
) -> None:
    config = RunConfig.of(get_settings(gate={"min_r2": 0.5}, seed=3), contract)
    uri = publish_run_config(store, model_name, config)
    assert publish_run_config(store, model_name, config) == uri  # named by its content
    assert read_run_config(store, uri) == config
    assert get_settings(**config.overrides()).gate.min_r2 == 0.5
    key = uri.removeprefix(f"s3://{store.bucket}/")
    loose = config.model_copy(update={"gate": config.gate.model_copy(update={"min_r2": -1.0})})
    store.put_bytes(key, loose.model_dump_json().encode())
    with pytest.raises(RunConfigMismatch, match="does not match the digest"):
        read_run_config(store, uri)
    with pytest.raises(RunConfigMismatch, match="not a run configuration"):
        read_run_config(store, "s3://another-bucket/" + key)


def test_a_staged_candidate_changed_in_the_bucket_is_not_registered(
    store: ObjectStore,
    cluster: Cluster,
    contract: DataContract,
    model_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The register step signs what it registers, so it trusts only what the train step signed."""
    package = compile_pipeline(tmp_path / "retrain.yaml", CONFIG)
    use_environment(monkeypatch, pod_environment(package, cluster))
    params = prepare(store, contract, model_name, generate_house_prices(400, seed=5))
    staged, verdict = train_and_judge(params["data_uri"], params["config_uri"], model_name)
    assert verdict.passed
    prefix = staged.removeprefix(f"s3://{store.bucket}/")
    document = store.get_bytes(prefix + "candidate.json")
    store.put_bytes(prefix + "candidate.json", document.replace(b'"r2":', b'"r2" :'))
    with pytest.raises(CandidateRefused, match="does not match its signature"):
        register_staged(staged, model_name, "tampered")
    store.delete(prefix + "candidate.sig")
    with pytest.raises(CandidateRefused, match="not signed"):
        register_staged(staged, model_name, "unsigned")
    assert list(store.list_keys(f"models/{model_name}/")) == []


# -- submission over HTTP to the stand-in KFP API ------------------------------------------------
PARAMS = RetrainParams(
    data_uri="s3://mlops/datasets/house-price/0a1b.parquet",
    config_uri="s3://mlops/staging/house-price/configs/2c3d.json",
    model_name="house-price",
    reason="drift",
)


@pytest.fixture
def kfp_api() -> Iterator[tuple[KfpApiStandIn, str]]:
    standin = KfpApiStandIn()
    with serve(standin) as url:
        yield standin, url


def test_submit_sends_spec_and_parameters_and_waits_until_succeeded(
    kfp_api, tmp_path: Path
) -> None:
    standin, url = kfp_api
    run = submit_retrain_run(url, PARAMS, FAST, wait=True, timeout=30)
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
    pipeline, platform = yaml.safe_load_all(
        compile_pipeline(tmp_path / "p.yaml", CONFIG).read_text()
    )
    assert body["pipeline_spec"]["pipeline_spec"]["root"] == pipeline["root"]
    assert body["pipeline_spec"]["platform_spec"] == platform  # the ConfigMap, Secrets, image
    assert len(standin.calls("GET", f"{API}/runs/{run_id}")) == 3  # PENDING, RUNNING, SUCCEEDED


def test_submit_without_wait_returns_the_pending_run_and_a_failed_run_is_reported(kfp_api) -> None:
    standin, url = kfp_api
    run = submit_retrain_run(url, PARAMS, FAST, wait=False)
    assert run.state == "PENDING" and not standin.calls("GET", f"{API}/runs/{run.run_id}")
    standin.states = ["RUNNING", "FAILED"]
    failed = submit_retrain_run(url, PARAMS, FAST, wait=True, timeout=30)
    assert (failed.state, failed.succeeded) == ("FAILED", False)
    assert len(standin.experiments) == 1  # the second submission reused the experiment


def test_waiting_times_out_on_a_run_that_never_finishes(kfp_api) -> None:
    standin, url = kfp_api
    standin.states = ["RUNNING"]
    started = time.monotonic()
    with pytest.raises(KfpRunTimeout, match=r"still RUNNING after 0\.5s") as caught:
        submit_retrain_run(url, PARAMS, FAST, wait=True, timeout=0.5)
    assert time.monotonic() - started < 10
    assert caught.value.run_id in standin.runs and caught.value.state == "RUNNING"


def test_unreachable_host_is_a_clear_error() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(KfpUnreachable, match=f"API at {host} is unreachable"):
        submit_retrain_run(host, PARAMS, FAST)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", f"{API}/runs", 500), ("GET", f"{API}/healthz", 403), ("POST", f"{API}/runs", 400)],
)
def test_http_errors_become_kfp_api_errors(kfp_api, method: str, path: str, status: int) -> None:
    standin, url = kfp_api
    standin.fail(method, path, status, "the stand-in says no")
    with pytest.raises(KfpApiError, match="the stand-in says no") as caught:
        submit_retrain_run(url, PARAMS, FAST, wait=True, timeout=5)
    assert caught.value.status == status
    assert not standin.runs
