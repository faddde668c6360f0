"""The retrain flow hands its training to Kubeflow when MLOPS_KFP_HOST is set: it finds, validates
and snapshots the training set as it does locally, publishes the run's configuration, and submits.

The KFP API is `tests/support/standins/kfp_api.py` (no KFP backend can run here). To stand in for
the pipeline's pods, the stand-in runs the two steps' project code in-process on the submitted
parameters when the run is created, so the snapshot and the configuration the flow hands over must
be real and readable from S3. What this does not prove: that a real cluster runs the pipeline (see
test_kubeflow.py, which runs the same pipeline with kfp.local and the pods' environment).
"""

from collections.abc import Iterator

import pytest
from prefect import get_client
from pydantic import ValidationError

from flows.retrain import retrain
from tasks.data.contract import load_contract
from tasks.data.synthetic import generate_house_prices
from tasks.images import ImageRefused
from tasks.kubeflow.components import register_staged, train_and_judge
from tasks.kubeflow.retrain import KubeflowRunFailed
from tasks.kubeflow.run_config import read_run_config
from tasks.registry.versions import ModelRegistry
from tasks.s3 import connect
from tasks.settings import Settings
from tests.support.keys import TEST_KEY
from tests.support.stack import events_named, publish_csv
from tests.support.standins.kfp_api import API, KfpApiStandIn, serve

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/selfheal-mlops/selfheal-mlops:3f2c1d0"


class PodsStandIn(KfpApiStandIn):
    """Also plays the pipeline's pods: a created run's steps run here, on its parameters."""

    run_steps = True

    def _create_run(self, body: dict) -> dict:
        run = super()._create_run(body)
        if not self.run_steps:
            return run
        params = body["runtime_config"]["parameters"]
        staged, _ = train_and_judge(params["data_uri"], params["config_uri"], params["model_name"])
        register_staged(staged, params["model_name"], params["reason"])
        return run


@pytest.fixture
def kfp(flow_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.store.ensure_bucket()
    standin = PodsStandIn()
    with serve(standin) as url:
        monkeypatch.setenv("MLOPS_KFP_HOST", url)
        monkeypatch.setenv("MLOPS_KFP_POLL_S", "0.1")
        monkeypatch.setenv("MLOPS_IMAGE", IMAGE)
        yield standin, registry


def test_retrain_trains_the_snapshot_on_kubeflow_under_the_flows_configuration(
    kfp, flow_env: Settings
) -> None:
    standin, registry = kfp
    data = publish_csv(flow_env, "new", generate_house_prices(600, seed=11))
    manifest = retrain(data=data, reason="drift on kfp")
    assert manifest.version == 1 and manifest.reason == "drift on kfp"
    (created,) = standin.calls("POST", f"{API}/runs")
    params = created.body["runtime_config"]["parameters"]
    assert params["model_name"] == flow_env.model_name and params["reason"] == "drift on kfp"
    snapshot = f"s3://{flow_env.bucket}/datasets/{flow_env.model_name}/{manifest.data.digest}"
    assert params["data_uri"] == manifest.data.source == snapshot + ".parquet"
    assert manifest.data.rows == 600
    config = read_run_config(registry.store, params["config_uri"])
    assert config.contract == load_contract(flow_env.contract_path)
    assert (config.gate, config.training, config.seed) == (
        flow_env.gate, flow_env.training, flow_env.seed)  # fmt: skip
    registry.load(1)  # signed with the session's key
    executors = created.body["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"]
    assert {executor["container"]["image"] for executor in executors.values()} == {IMAGE}
    (event,) = events_named("mlops.model.registered", flow_env.model_name)
    assert event.payload["version"] == 1
    with get_client(sync_client=True) as client:
        artifacts = client.read_latest_artifacts()
    (recorded,) = [a for a in artifacts if a.key == "kubeflow-run"]
    assert next(iter(standin.runs)) in recorded.data and IMAGE in recorded.data


def test_without_data_or_labelled_traffic_the_retrain_defers_and_submits_nothing(
    kfp, flow_env: Settings
) -> None:
    standin, _ = kfp
    state = retrain(reason="drift: scheduled check", return_state=True)
    assert state.is_completed() and state.name == "Deferred", state
    assert not standin.calls("POST", f"{API}/runs")


@pytest.mark.parametrize(
    ("image", "error", "problem"),
    [
        (None, ImageRefused, "MLOPS_IMAGE is not set"),
        # Refused by the settings, when the run starts.
        ("ghcr.io/selfheal-mlops/selfheal-mlops:latest", ValidationError, "is tagged latest"),
    ],
)
def test_an_unpinned_image_fails_the_run_before_anything_is_submitted(
    kfp,
    flow_env: Settings,
    monkeypatch: pytest.MonkeyPatch,
    image: str | None,
    error: type[Exception],
    problem: str,
) -> None:
    standin, registry = kfp
    if image is None:
        monkeypatch.delenv("MLOPS_IMAGE")
    else:
        monkeypatch.setenv("MLOPS_IMAGE", image)
    data = publish_csv(flow_env, "new", generate_house_prices(300, seed=12))
    with pytest.raises(error, match=problem):
        retrain(data=data, reason="unpinned")
    assert not standin.calls("POST", f"{API}/runs")
    assert list(registry.store.list_keys(f"staging/{flow_env.model_name}/")) == []


def test_a_failed_kubeflow_run_fails_the_flow(kfp, flow_env: Settings) -> None:
    standin, _ = kfp
    standin.states, standin.run_steps = ["RUNNING", "FAILED"], False
    data = publish_csv(flow_env, "new", generate_house_prices(300, seed=13))
    with pytest.raises(KubeflowRunFailed, match="ended FAILED"):
        retrain(data=data, reason="will fail")
