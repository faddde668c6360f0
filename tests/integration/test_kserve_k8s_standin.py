"""KubernetesServingTarget driving the real `kubernetes` client against a stand-in API server.

No Kubernetes API server can run on this machine, so `tests/support/standins/k8s_api.py` answers
the InferenceService endpoints over real HTTP on 127.0.0.1: it enforces KServe's CRD schema
(strict), resourceVersion preconditions, generation bumps and the status subresource, and a
`KServeControllerModel` fills `status` the way KServe reports it (a stale status is served for a
read after each write, as a real controller lags).

What this does NOT prove: that a real API server, KServe's admission webhook or Knative accept
and act on these objects; that the traffic split or revision bookkeeping matches KServe in every
case (the controller here is our model of it); RBAC; watch-based behaviour; S3 credentials.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import yaml
from kubernetes.client import ApiClient, Configuration, CustomObjectsApi

from tasks.kserve.errors import (
    AnotherModelsService,
    CanaryInProgress,
    InferenceServiceConflict,
    InferenceServiceInvalid,
    InferenceServiceNotFound,
    KubernetesUnreachable,
    NoCanaryInProgress,
    NotReadyInTime,
    RuntimeMismatch,
)
from tasks.kserve.manifests import (
    ObjectRef,
    ServedModel,
    ServingSpec,
    predictor_container,
    render_inference_service,
    served_from_container,
)
from tasks.kserve.target import KubernetesServingTarget
from tasks.registry.versions import DataSummary, Manifest
from tests.support.standins.k8s_api import (
    KServeControllerModel,
    KubeApiStandIn,
    kserve_crd_schema,
    serve,
)

pytestmark = pytest.mark.integration

NS, NAME = "models", "house-price"
PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices"
SPEC = ServingSpec(
    model_name="house-price",
    image="ghcr.io/example/selfheal-mlops:abc1234",
    runtime_sklearn_version="1.7.2",
)


def manifest(version: int, sklearn: str = "1.7.2") -> Manifest:
    return Manifest(
        name="house-price",
        version=version,
        sha256="0" * 64,
        size_bytes=1,
        storage_uri=f"s3://mlops/models/house-price/v{version}/",
        features=["sqft"],
        target="price",
        metrics={"rmse": 1.0},
        data=DataSummary(digest="d", rows=1),
        contract={},
        git_revision="abc",
        params={},
        library_versions={"scikit-learn": sklearn},
        parent=None,
        created_at=datetime.now(UTC),
        created_by="test",
    )


def client(url: str) -> CustomObjectsApi:
    return CustomObjectsApi(ApiClient(Configuration(host=url)))


@pytest.fixture
def cluster() -> Iterator[tuple[KubeApiStandIn, CustomObjectsApi, str]]:
    standin = KubeApiStandIn(schema=kserve_crd_schema(), controller=KServeControllerModel())
    with serve(standin) as url:
        yield standin, client(url), url


def target(api: CustomObjectsApi, spec: ServingSpec = SPEC, **kw: float) -> KubernetesServingTarget:
    return KubernetesServingTarget(
        api, NS, NAME, spec, timeout_s=kw.get("timeout_s", 5.0), poll_s=0.02
    )


def predictor(standin: KubeApiStandIn) -> dict:
    return standin.stored(NS, NAME)["spec"]["predictor"]


def test_create_canary_percent_promote(cluster) -> None:
    standin, api, _ = cluster
    serving = target(api)
    state = serving.deploy_stable(manifest(1))
    create = standin.writes()[0]
    assert (create.method, create.path, create.query["fieldValidation"]) == ("POST", PATH, "Strict")
    assert create.body == render_inference_service(
        ObjectRef(namespace=NS, name=NAME), SPEC, manifest(1)
    )
    assert (state.stable_version, state.canary_version, state.ready) == (1, None, True)

    state = serving.start_canary(manifest(2), 10)
    patch = standin.writes()[-1]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.query["fieldManager"] == "selfheal-mlops"
    assert patch.body["metadata"]["resourceVersion"] == "1"
    assert patch.body["spec"]["predictor"] == {
        "canaryTrafficPercent": 10,
        "containers": [
            predictor_container(
                SPEC, ServedModel(version=2, storage_uri="s3://mlops/models/house-price/v2/")
            )
        ],
    }
    assert (state.stable_version, state.canary_version, state.canary_percent) == (1, 2, 10)
    tags = {t["tag"]: t["percent"] for t in state.detail["traffic"]}
    assert tags == {"latest": 10, "prev": 90}
    assert state.detail["latestReadyRevision"] == "house-price-predictor-00002"

    assert serving.set_canary_percent(50).canary_percent == 50
    state = serving.promote_canary()
    assert standin.writes()[-1].body["spec"] == {"predictor": {"canaryTrafficPercent": None}}
    assert "canaryTrafficPercent" not in predictor(standin)
    assert (state.stable_version, state.canary_version, state.canary_percent) == (2, None, 0)
    assert state.detail["previousRolledoutRevision"] == "house-price-predictor-00001"


def test_rollback_pins_the_stable_version_and_is_idempotent(cluster) -> None:
    standin, api, _ = cluster
    serving = target(api)
    serving.deploy_stable(manifest(2))
    serving.start_canary(manifest(3), 20)
    state = serving.rollback_canary()
    assert predictor(standin)["canaryTrafficPercent"] == 0
    (container,) = predictor(standin)["containers"]
    assert served_from_container(container) == "s3://mlops/models/house-price/v2/"
    assert (state.stable_version, state.canary_version, state.canary_percent) == (2, None, 0)
    traffic = {t["tag"]: (t["revisionName"], t["percent"]) for t in state.detail["traffic"]}
    assert traffic["prev"] == ("house-price-predictor-00001", 100)  # the v2 revision serves all
    assert traffic["latest"][1] == 0
    writes = len(standin.writes())
    assert serving.rollback_canary().canary_version is None  # idempotent: nothing to undo
    assert len(standin.writes()) == writes


def test_deploy_stable_over_a_running_canary_clears_it(cluster) -> None:
    standin, api, _ = cluster
    serving = target(api)
    serving.deploy_stable(manifest(1))
    serving.start_canary(manifest(2), 30)
    state = serving.deploy_stable(manifest(4))
    stored = standin.stored(NS, NAME)
    assert "canaryTrafficPercent" not in stored["spec"]["predictor"]
    assert "mlops.selfheal.io/stable-version" not in stored["metadata"]["annotations"]
    assert (state.stable_version, state.canary_version) == (4, None)


def test_a_stale_ready_status_is_not_trusted(cluster) -> None:
    standin, api, _ = cluster
    serving = target(api)
    serving.deploy_stable(manifest(1))
    standin.controller_lag = 3  # three reads after the patch still show the old Ready=True
    serving.start_canary(manifest(2), 10)
    last_write = max(i for i, r in enumerate(standin.requests) if r.method != "GET")
    reads = [r for r in standin.requests[last_write + 1 :] if r.method == "GET"]
    assert len(reads) == 4


def test_state_reads_a_status_set_by_the_test(cluster) -> None:
    standin, api, _ = cluster
    standin.controller = None
    serving = target(api, timeout_s=0.2)
    with pytest.raises(NotReadyInTime, match="generation 1 not yet observed"):
        serving.deploy_stable(manifest(1))
    status = {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "latestReadyRevision": "house-price-predictor-00007",
                "previousRolledoutRevision": "house-price-predictor-00006",
                "traffic": [{"revisionName": "house-price-predictor-00007", "percent": 100}],
            }
        },
    }
    standin.set_status(NS, NAME, status)
    state = serving.state()
    assert state.ready and state.stable_version == 1
    assert state.detail["previousRolledoutRevision"] == "house-price-predictor-00006"


def test_timeout_when_never_ready_names_the_object_and_reason(cluster) -> None:
    standin, api, _ = cluster
    standin.controller = KServeControllerModel(ready=False)
    started = time.monotonic()
    with pytest.raises(
        NotReadyInTime, match=r"models/house-price not Ready within 0.3s.*RevisionMissing"
    ):
        target(api, timeout_s=0.3).deploy_stable(manifest(1))
    assert time.monotonic() - started >= 0.3


def test_mismatching_sklearn_is_refused_before_any_call(cluster) -> None:
    standin, api, _ = cluster
    with pytest.raises(RuntimeMismatch, match=r"1\.6\.1 but the runtime has 1\.7\.2"):
        target(api).deploy_stable(manifest(1, sklearn="1.6.1"))
    assert standin.requests == []
    target(api).deploy_stable(manifest(1))
    with pytest.raises(RuntimeMismatch):
        target(api).start_canary(manifest(2, sklearn="1.8.0"), 10)
    assert len(standin.writes()) == 1


def test_canary_misuse_is_refused(cluster) -> None:
    _, api, _ = cluster
    serving = target(api)
    serving.deploy_stable(manifest(1))
    with pytest.raises(NoCanaryInProgress, match="models/house-price"):
        serving.promote_canary()
    with pytest.raises(NoCanaryInProgress):
        serving.set_canary_percent(20)
    serving.start_canary(manifest(2), 10)
    with pytest.raises(CanaryInProgress, match="canary v2 is still running"):
        serving.start_canary(manifest(3), 10)


def test_not_found_and_invalid_errors_name_the_object(cluster) -> None:
    _, api, _ = cluster
    with pytest.raises(
        InferenceServiceNotFound, match="read InferenceService models/house-price: HTTP 404"
    ):
        target(api).state()
    bad = SPEC.model_construct(**(dict(SPEC) | {"image": 5}))  # not a string: the CRD says no
    with pytest.raises(InferenceServiceInvalid, match=r"HTTP 422 .*image"):
        target(api, bad).deploy_stable(manifest(1))


def test_a_concurrent_change_is_a_conflict_not_an_overwrite(cluster) -> None:
    standin, api, url = cluster
    target(api).deploy_stable(manifest(1))
    target(api).start_canary(manifest(2), 10)

    class RacingApi(CustomObjectsApi):
        """Someone else changes the object between our read and our patch."""

        def get_namespaced_custom_object(self, *args, **kwargs):
            seen = super().get_namespaced_custom_object(*args, **kwargs)
            body = {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
            api.patch_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", NS, "inferenceservices", NAME, body
            )
            return seen

    with pytest.raises(InferenceServiceConflict, match="models/house-price: HTTP 409"):
        target(RacingApi(ApiClient(Configuration(host=url)))).promote_canary()
    assert predictor(standin)["canaryTrafficPercent"] == 0


def test_connection_refused_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(
        KubernetesUnreachable, match="models/house-price: Kubernetes API unreachable"
    ):
        target(client(f"http://127.0.0.1:{port}")).state()


def test_why_merge_patch_not_apply_for_promotion(cluster) -> None:
    """With server-side apply, omitting canaryTrafficPercent removes it only when the applier
    is its sole owner; a value last set by someone else survives. Merge patch `null` does not."""
    standin, api, url = cluster
    body = render_inference_service(ObjectRef(namespace=NS, name=NAME), SPEC, manifest(1))
    apply = {"Content-Type": "application/apply-patch+yaml"}
    item = f"{url}{PATH}/{NAME}"
    first = httpx.patch(
        item, content=yaml.safe_dump(body), headers=apply, params={"fieldManager": "ci"}
    )
    assert first.status_code == 201
    edit = {"spec": {"predictor": {"canaryTrafficPercent": 30}}}
    api.patch_namespaced_custom_object(
        "serving.kserve.io",
        "v1beta1",
        NS,
        "inferenceservices",
        NAME,
        edit,
        field_manager="kubectl-edit",
    )
    reply = httpx.patch(
        item, content=yaml.safe_dump(body), headers=apply, params={"fieldManager": "ci"}
    )
    assert reply.status_code == 200
    assert predictor(standin)["canaryTrafficPercent"] == 30  # the "promotion" did nothing
    api.patch_namespaced_custom_object(
        "serving.kserve.io",
        "v1beta1",
        NS,
        "inferenceservices",
        NAME,
        {"spec": {"predictor": {"canaryTrafficPercent": None}}},
    )
    assert "canaryTrafficPercent" not in predictor(standin)


def test_another_model_s_service_is_never_changed(cluster) -> None:
    """A second model's flows pointed at house-price's InferenceService (one MLOPS_KSERVE_SERVICE
    for every run) are refused on the first read: its versions are not this model's."""
    standin, api, _ = cluster
    target(api).deploy_stable(manifest(1))
    writes = len(standin.writes())
    other = SPEC.model_copy(update={"model_name": "diabetes"})
    diabetes = manifest(3).model_copy(
        update={"name": "diabetes", "storage_uri": "s3://mlops/models/diabetes/v3/"}
    )
    for act in (lambda t: t.deploy_stable(diabetes), lambda t: t.rollback_canary(),
                lambda t: t.start_canary(diabetes, 10)):  # fmt: skip
        with pytest.raises(AnotherModelsService, match="serves 'house-price', not 'diabetes'"):
            act(target(api, other))
    assert len(standin.writes()) == writes
    assert target(api).state().stable_version == 1
