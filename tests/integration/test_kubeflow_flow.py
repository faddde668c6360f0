"""The retrain flow hands its work to Kubeflow when MLOPS_KFP_HOST is set.

The KFP API is `tests/support/standins/kfp_api.py` (no KFP backend can run here). To stand in for
the pipeline's pods, the success case registers a real model in the real registry when the run is
created. What this does not prove: that a real cluster runs the pipeline (see
test_kubeflow.py, which runs the same pipeline for real with kfp.local).
"""

from collections.abc import Iterator

import pytest
from prefect import get_client

from flows.retrain import retrain
from tasks.kubeflow.retrain import KubeflowRunFailed
from tasks.registry.versions import ModelRegistry
from tasks.s3 import connect
from tasks.settings import Settings
from tests.support.keys import TEST_KEY
from tests.support.specs import spec_for
from tests.support.stack import events_named
from tests.support.standins.kfp_api import API, KfpApiStandIn, serve

pytestmark = pytest.mark.integration


class RegisteringStandIn(KfpApiStandIn):
    """Also plays the pipeline's register step: a version appears when the run is created."""

    def __init__(self, registry: ModelRegistry) -> None:
        super().__init__()
        self.registry = registry

    def _create_run(self, body: dict) -> dict:
        reason = body["runtime_config"]["parameters"]["reason"]
        spec = spec_for(rows=1, git_revision="kfp", library_versions={}, reason=reason)
        self.registry.register({"stand-in": True}, spec)
        return super()._create_run(body)


@pytest.fixture
def kfp(flow_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.store.ensure_bucket()
    standin = RegisteringStandIn(registry)
    with serve(standin) as url:
        monkeypatch.setenv("MLOPS_KFP_HOST", url)
        monkeypatch.setenv("MLOPS_KFP_POLL_S", "0.1")
        yield standin, registry


def test_retrain_submits_to_kubeflow_waits_and_announces(kfp, flow_env: Settings) -> None:
    standin, _ = kfp
    manifest = retrain(data="s3://mlops/datasets/new.csv", reason="drift on kfp")
    assert manifest.version == 1 and manifest.reason == "drift on kfp"
    (created,) = standin.calls("POST", f"{API}/runs")
    assert created.body["runtime_config"]["parameters"] == {
        "data_uri": "s3://mlops/datasets/new.csv", "model_name": flow_env.model_name,
        "reason": "drift on kfp"}  # fmt: skip
    (event,) = events_named("mlops.model.registered", flow_env.model_name)
    assert event.payload["version"] == 1
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
    recorded = [a for a in artifact if a.key == "kubeflow-run"]
    assert recorded and next(iter(standin.runs)) in recorded[0].data


def test_a_failed_kubeflow_run_fails_the_flow(kfp, flow_env: Settings) -> None:
    standin, _ = kfp
    standin.states = ["RUNNING", "FAILED"]
    with pytest.raises(KubeflowRunFailed, match="ended FAILED"):
        retrain(data="s3://mlops/datasets/new.csv", reason="will fail")
