"""The canary loop on the kubernetes target: deploy → canary → canary-analysis → promote or
roll back, with the evidence read from S3 logs written by real predictor processes.

Real: the Prefect flows (deploy, canary-analysis) with MLOPS_SERVING_TARGET=kubernetes and the
`kubernetes` client, SeaweedFS, and one project predictor process per revision
(`infra/model_server_main.py --storage-uri …`, exactly the container the InferenceService runs),
each verifying its version and writing serving logs. Stand-ins at the network edge only: the
Kubernetes API server holding the InferenceService (tests/support/standins/k8s_api.py, KServe's
CRD enforced) and Knative's traffic split (tests/support/standins/knative.py), which sends each
request to a revision's predictor by the split the controller model reports.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pytest
import yaml

from flows.canary_analysis import canary_analysis
from flows.deploy import deploy
from infra.model_server import ModelServer, ModelServerError, start_model_server
from infra.traffic import Traffic
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import ServeOptions
from tasks.kserve.manifests import served_from_container
from tasks.registry.versions import ModelRegistry
from tasks.s3 import connect
from tasks.settings import Settings
from tests.support.keys import TEST_KEY
from tests.support.models import HouseModels, register
from tests.support.specs import spec_for
from tests.support.standins.http import serve_app
from tests.support.standins.k8s_api import (
    KServeControllerModel,
    KubeApiStandIn,
    kserve_crd_schema,
    serve,
)
from tests.support.standins.knative import KnativeRouter

pytestmark = pytest.mark.integration

NS = "mlops"
IMAGE = "ghcr.io/example/selfheal-mlops:test123"


def kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig whose one context points at the stand-in (plain HTTP on loopback)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "standin", "cluster": {"server": server}}],
        "users": [{"name": "standin", "user": {}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
        "current-context": "standin",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def cluster(
    flow_env: Settings, s3_server, house_models: HouseModels, tmp_path: Path, monkeypatch
) -> Iterator[dict]:
    model = flow_env.model_name
    registry = ModelRegistry(connect(flow_env), model, TEST_KEY)
    registry.store.ensure_bucket()
    versions = {
        "v1": register(registry, house_models, 41, 1.0),
        "v2": register(registry, house_models, 42, 1.0),
        "bad": register(registry, house_models, 43, 1.6),
    }
    controller = KServeControllerModel()
    standin = KubeApiStandIn(schema=kserve_crd_schema(), controller=controller)
    servers: list[ModelServer] = []
    with serve(standin) as api_url:
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", api_url)))
        for name, value in {
            "MLOPS_SERVING_TARGET": "kubernetes",
            "MLOPS_KUBE_CONTEXT": "standin",
            "MLOPS_KSERVE_NAMESPACE": NS,
            "MLOPS_KSERVE_SERVICE": model,
            "MLOPS_IMAGE": IMAGE,
            "MLOPS_CANARY_POLL_S": "0.5",
        }.items():
            monkeypatch.setenv(name, value)
        try:
            predictors = {}
            for version in versions.values():  # one pod per revision, as Knative runs them
                uri = registry.manifest(version).storage_uri
                server = start_model_server(
                    s3_server.env(), model, options=ServeOptions(log_flush_seconds=0.5),
                    extra_args=["--storage-uri", uri],
                )  # fmt: skip
                servers.append(server)
                predictors[uri] = server.url
            router = KnativeRouter(standin, controller, NS, model, predictors)
            with serve_app(router.app(), "the Knative router stand-in") as url:
                parts = {"registry": registry, "standin": standin, "router": router, "url": url}
                yield parts | versions
        finally:
            for server in servers:
                server.stop()


def isvc(cluster: dict) -> dict:
    return cluster["standin"].stored(NS, cluster["registry"].name)


def served_uri(cluster: dict) -> str:
    return served_from_container(isvc(cluster)["spec"]["predictor"]["containers"][0])


def uri_of(cluster: dict, version: int) -> str:
    return cluster["registry"].manifest(version).storage_uri


def traffic(cluster: dict, seed: int) -> Traffic:
    rows = generate_house_prices(3000, seed=seed)
    registry = cluster["registry"]
    return Traffic(cluster["url"], registry.name, rows, "price", registry.store)


def test_the_kubernetes_canary_is_promoted_when_good_and_rolled_back_when_worse(
    cluster: dict, flow_env: Settings, reliability
) -> None:
    registry, router = cluster["registry"], cluster["router"]
    v1, v2, bad = cluster["v1"], cluster["v2"], cluster["bad"]

    assert deploy(version=v1, reason="first") == "first"
    assert served_uri(cluster) == uri_of(cluster, v1)
    assert deploy(version=v2, percent=30, reason="better") == "canary"
    assert isvc(cluster)["spec"]["predictor"]["canaryTrafficPercent"] == 30
    with traffic(cluster, seed=60) as users:
        record = canary_analysis(max_wait_s=120)
    assert record.verdict.action == "promote", record.verdict.reasons
    # The evidence is what the two predictor processes logged to S3, per version.
    assert record.canary.requests > 0 and record.stable.requests > 0
    assert router.routed[uri_of(cluster, v2)] > 0 and router.routed[uri_of(cluster, v1)] > 0
    assert users.report.failed == 0
    promoted = isvc(cluster)["spec"]["predictor"]
    assert "canaryTrafficPercent" not in promoted and served_uri(cluster) == uri_of(cluster, v2)
    assert registry.aliases() == {"champion": v2, "previous": v1}

    deploy(version=bad, percent=30, reason="looks fine offline")
    assert served_uri(cluster) == uri_of(cluster, bad)
    with traffic(cluster, seed=61) as users:
        record = canary_analysis(max_wait_s=120)
    assert record.verdict.action == "rollback", record.verdict.reasons
    assert record.canary.requests > 0 and users.report.failed == 0
    rolled_back = isvc(cluster)["spec"]["predictor"]
    assert rolled_back["canaryTrafficPercent"] == 0 and served_uri(cluster) == uri_of(cluster, v2)
    assert registry.alias("champion") == v2 and registry.alias("canary") is None
    # After the rollback Knative sends everything to the v2 revision again.
    before = dict(router.routed)
    with traffic(cluster, seed=62) as users:
        deadline = time.monotonic() + 30
        while users.report.sent < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
    after = {uri: count - before.get(uri, 0) for uri, count in router.routed.items()}
    assert after.get(uri_of(cluster, bad), 0) == 0 and after.get(uri_of(cluster, v2), 0) > 0
    reliability(
        "fault injection",
        "kubernetes target: a worse canary on the InferenceService",
        done=f"v{v2} then v{bad} (prices ×1.6) as 30% canaries on the InferenceService, traffic "
        "split between two real predictor processes",
        expected="v2 promoted (canaryTrafficPercent removed), the worse one rolled back "
        "(percent 0, container pinned to v2)",
        observed=f"{record.verdict.action} of v{bad} on {record.canary.requests} canary / "
        f"{record.stable.requests} stable logged requests; champion v{registry.alias('champion')}",
    )


class Payload:
    """A "model" whose unpickling creates a file: proof of whether anything was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def start_predictor(s3_server, model: str, uri: str, **env: str) -> ModelServer:
    return start_model_server(
        {**s3_server.env(), **env}, model, options=ServeOptions(log_requests=False),
        extra_args=["--storage-uri", uri], ready_timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["unsigned", "tampered"])
def test_the_predictor_refuses_before_it_unpickles(
    how: str, flow_env: Settings, s3_server, house_models: HouseModels, tmp_path: Path,
    reliability,
) -> None:  # fmt: skip
    model, marker = flow_env.model_name, tmp_path / "unpickled"
    store = connect(flow_env)
    store.ensure_bucket()
    if how == "unsigned":  # a writer without the key: sha256 matches, no signature
        forger = ModelRegistry(store, model, allow_unsigned=True)
        manifest = forger.register(Payload(marker), spec_for(house_models.contract))
        expected = "not signed"
    else:  # a signed version whose model file was swapped afterwards
        keyed = ModelRegistry(store, model, TEST_KEY)
        manifest = keyed.manifest(register(keyed, house_models, 41, 1.0))
        payload = io.BytesIO()
        joblib.dump(Payload(marker), payload)
        store.put_bytes(f"models/{model}/v{manifest.version}/model.joblib", payload.getvalue())
        expected = "sha256"
    with pytest.raises(ModelServerError) as refused:
        start_predictor(s3_server, model, manifest.storage_uri)
    assert expected in str(refused.value) and "refusing to serve" in str(refused.value)
    assert not marker.exists()  # nothing was unpickled
    reliability(
        "security",
        f"predictor given a {how} version",
        done=f"started the Kubernetes predictor (--storage-uri) on a {how} version whose "
        "pickle creates a file when loaded",
        expected="the process refuses to start, naming the check; the pickle never runs",
        observed=f"{str(refused.value).splitlines()[0][:100]}; file created: {marker.exists()}",
    )


def test_the_marker_would_show_an_unpickle(
    flow_env: Settings, s3_server, house_models: HouseModels, tmp_path: Path, monkeypatch
) -> None:
    """The control for the test above: with signatures switched off (MLOPS_ALLOW_UNSIGNED) the
    same payload does get unpickled, so an absent marker there means "refused in time"."""
    model, marker = flow_env.model_name, tmp_path / "unpickled"
    store = connect(flow_env)
    store.ensure_bucket()
    forger = ModelRegistry(store, model, allow_unsigned=True)
    manifest = forger.register(Payload(marker), spec_for(house_models.contract))
    monkeypatch.delenv("MLOPS_MANIFEST_KEY")
    with pytest.raises(ModelServerError):  # a file object is no model: it cannot serve
        start_predictor(s3_server, model, manifest.storage_uri, MLOPS_ALLOW_UNSIGNED="true")
    assert marker.exists()


def test_a_pinned_predictor_serves_its_version_only_and_cannot_be_rerouted(
    flow_env: Settings, s3_server, house_models: HouseModels
) -> None:
    model = flow_env.model_name
    registry = ModelRegistry(connect(flow_env), model, TEST_KEY)
    registry.store.ensure_bucket()
    version = register(registry, house_models, 41, 1.0)
    other = register(registry, house_models, 42, 1.0)
    server = start_predictor(s3_server, model, registry.manifest(version).storage_uri)
    try:
        row = generate_house_prices(5, seed=1).drop(columns="price").to_dict("records")
        answer = httpx.post(f"{server.url}/v1/models/{model}:predict", json={"instances": row})
        rerouted = httpx.put(
            f"{server.url}/mlops/v1/routing",
            json={"stable_version": other, "canary_version": None, "canary_percent": 0},
        )
        routing = httpx.get(f"{server.url}/mlops/v1/routing").json()["routing"]
    finally:
        server.stop()
    assert answer.status_code == 200 and answer.headers["x-model-version"] == str(version)
    assert rerouted.status_code == 403 and "read-only" in rerouted.text
    assert routing["stable_version"] == version and routing["canary_version"] is None
    elsewhere = f"s3://{flow_env.bucket}/models/another-model/v{version}/"
    with pytest.raises(ModelServerError, match="is not s3://"):
        start_predictor(s3_server, model, elsewhere)
