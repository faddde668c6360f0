"""KServe objects as data: every rendered InferenceService checked against KServe's own CRD.

The CRD schema is made strict (unknown fields forbidden where the CRD lists the known ones),
so a misspelt field fails here instead of being pruned silently by a real API server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from tasks.decisions.runtime import check_sklearn_runtime
from tasks.kserve.errors import KServeError
from tasks.kserve.manifests import (
    ManifestError,
    ObjectRef,
    ServedModel,
    ServingSpec,
    apply_merge_patch,
    canary_percent_patch,
    predictor_container,
    promote_patch,
    render_canary,
    render_inference_service,
    rollback_patch,
    served_from_container,
    stable_patch,
    start_canary_patch,
)
from tasks.kserve.s3_access import (
    S3Spec,
    fill_secret,
    render_infra_yaml,
    render_s3_secret_template,
    render_service_account,
    render_settings_config_map,
)
from tasks.kserve.status import desired_split, readiness, serving_state
from tasks.registry.versions import DataSummary, Manifest
from tests.support.standins.k8s_api import strict_schema

KSERVE = Path(__file__).resolve().parents[2] / "infra" / "crds" / "kserve"
REF = ObjectRef(namespace="models", name="house-price")
IMAGE = "ghcr.io/example/selfheal-mlops:abc1234"
SPEC = ServingSpec(model_name="house-price", image=IMAGE, runtime_sklearn_version="1.7.2")
STABLE_URI = "s3://mlops/models/house-price/v1/"
CANARY_URI = "s3://mlops/models/house-price/v2/"


def manifest(version: int, sklearn: str = "1.7.2", name: str = "house-price") -> Manifest:
    return Manifest(
        name=name,
        version=version,
        sha256="0" * 64,
        size_bytes=1,
        storage_uri=f"s3://mlops/models/{name}/v{version}/",
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


@cache
def crd_validator() -> jsonschema.Draft7Validator:
    text = (KSERVE / "serving.kserve.io_inferenceservices.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 2 MB: C parser
    (v1beta1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return jsonschema.Draft7Validator(strict_schema(v1beta1["schema"]["openAPIV3Schema"]))


def assert_valid(obj: dict) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in crd_validator().iter_errors(obj)]
    assert not errors, errors


def stable() -> dict:
    return render_inference_service(REF, SPEC, manifest(1))


def canary(percent: int = 10) -> dict:
    return render_canary(REF, SPEC, manifest(1), manifest(2), percent)


def test_stable_inference_service_is_valid_and_complete() -> None:
    obj = stable()
    assert_valid(obj)
    predictor = obj["spec"]["predictor"]
    assert "model" not in predictor and "logger" not in predictor  # not KServe's runtime
    (container,) = predictor["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["python", "-m", "infra.model_server_main"]
    assert served_from_container(container) == STABLE_URI
    assert container["args"][:2] == ["--model-name", "house-price"]
    assert {"configMapRef": {"name": "mlops-serving-settings"}} in container["envFrom"]
    assert {"secretRef": {"name": "mlops-s3-serving"}} in container["envFrom"]
    assert {"secretRef": {"name": "mlops-manifest-key"}} in container["envFrom"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert predictor["serviceAccountName"] == "mlops-serving"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert "canaryTrafficPercent" not in predictor
    assert obj["metadata"]["annotations"] == {"serving.kserve.io/enable-tag-routing": "true"}
    assert obj["metadata"]["labels"]["mlops.selfheal.io/model"] == "house-price"
    assert obj["metadata"]["labels"]["mlops.selfheal.io/model-version"] == "1"


def test_canary_is_the_same_spec_with_the_canary_version_and_percent() -> None:
    obj = canary(15)
    assert_valid(obj)
    predictor = obj["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 15
    assert served_from_container(predictor["containers"][0]) == CANARY_URI
    assert obj["metadata"]["labels"]["mlops.selfheal.io/model-version"] == "2"
    assert obj["metadata"]["annotations"]["mlops.selfheal.io/stable-storage-uri"] == STABLE_URI
    # Only the version differs from the stable container: a new revision, same everything else.
    (old,), (new,) = stable()["spec"]["predictor"]["containers"], predictor["containers"]
    assert {k: v for k, v in old.items() if k != "args"} == {
        k: v for k, v in new.items() if k != "args"
    }


def test_after_promote_and_after_rollback_are_valid() -> None:
    promoted = apply_merge_patch(canary(), promote_patch())
    assert_valid(promoted)
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert served_from_container(promoted["spec"]["predictor"]["containers"][0]) == CANARY_URI

    rolled_back = apply_merge_patch(
        canary(), rollback_patch(SPEC, ServedModel(version=1, storage_uri=STABLE_URI))
    )
    assert_valid(rolled_back)
    assert rolled_back["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert served_from_container(rolled_back["spec"]["predictor"]["containers"][0]) == STABLE_URI
    assert rolled_back["metadata"]["labels"]["mlops.selfheal.io/model-version"] == "1"


def test_the_crd_check_can_fail() -> None:
    typo = stable()
    typo["spec"]["predictor"]["canaryTraficPercent"] = 10
    wrong_type = apply_merge_patch(
        stable(), {"spec": {"predictor": {"canaryTrafficPercent": "10"}}}
    )
    for bad in (typo, wrong_type):
        with pytest.raises(AssertionError):
            assert_valid(bad)


def test_patch_bodies_are_exactly_as_kserve_documents() -> None:
    assert promote_patch() == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    assert json.dumps(promote_patch()) == '{"spec": {"predictor": {"canaryTrafficPercent": null}}}'
    assert canary_percent_patch(30) == {"spec": {"predictor": {"canaryTrafficPercent": 30}}}
    old, new = (
        ServedModel(version=1, storage_uri=STABLE_URI),
        ServedModel(version=2, storage_uri=CANARY_URI),
    )
    assert start_canary_patch(SPEC, old, new, 10) == {
        "metadata": {
            "labels": {"mlops.selfheal.io/model-version": "2"},
            "annotations": {
                "mlops.selfheal.io/stable-version": "1",
                "mlops.selfheal.io/stable-storage-uri": STABLE_URI,
            },
        },
        "spec": {
            "predictor": {
                "canaryTrafficPercent": 10,
                "containers": [predictor_container(SPEC, new)],
            }
        },
    }
    assert rollback_patch(SPEC, old) == {
        "metadata": {"labels": {"mlops.selfheal.io/model-version": "1"}},
        "spec": {
            "predictor": {
                "canaryTrafficPercent": 0,
                "containers": [predictor_container(SPEC, old)],
            }
        },
    }


@pytest.mark.parametrize("percent", [-1, 101, True, 2.5, "10"])
def test_bad_percent_is_refused(percent: object) -> None:
    with pytest.raises(ManifestError, match="canary percent"):
        canary_percent_patch(percent)  # type: ignore[arg-type]


def test_start_canary_needs_some_traffic_and_a_different_version() -> None:
    old = ServedModel(version=1, storage_uri=STABLE_URI)
    with pytest.raises(ManifestError, match=r"1\.\.100"):
        start_canary_patch(SPEC, old, ServedModel(version=2, storage_uri=CANARY_URI), 0)
    with pytest.raises(ManifestError, match="already the stable version"):
        start_canary_patch(SPEC, old, old, 10)


def test_stable_patch_clears_a_running_canary() -> None:
    result = apply_merge_patch(
        canary(), stable_patch(render_inference_service(REF, SPEC, manifest(3)))
    )
    assert_valid(result)
    assert "canaryTrafficPercent" not in result["spec"]["predictor"]
    (container,) = result["spec"]["predictor"]["containers"]
    assert served_from_container(container) == "s3://mlops/models/house-price/v3/"
    assert result["metadata"]["annotations"] == {"serving.kserve.io/enable-tag-routing": "true"}


def test_foreign_or_malformed_manifests_are_refused() -> None:
    with pytest.raises(ManifestError, match="not 'house-price'"):
        render_inference_service(REF, SPEC, manifest(1, name="churn"))
    moved = manifest(1).model_copy(update={"storage_uri": "s3://mlops/elsewhere/model.joblib"})
    with pytest.raises(ManifestError, match="elsewhere"):
        render_inference_service(REF, SPEC, moved)


def test_specs_refuse_bad_names_and_urls() -> None:
    with pytest.raises(ValidationError):
        ObjectRef(namespace="Models", name="house-price")
    with pytest.raises(ValidationError):
        ServingSpec(model_name="House_Price", image=IMAGE, runtime_sklearn_version="1.7")


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("ghcr.io/example/mlops", "has no tag nor digest"),
        ("ghcr.io/example/mlops:latest", "is tagged latest"),
        ("localhost:5000/mlops", "has no tag nor digest"),
        ("ghcr.io/Example/mlops:abc1234", "not a repository name"),
    ],
)
def test_an_unpinned_image_is_refused(image: str, problem: str) -> None:
    """tasks/images.py's check (tests/unit/test_images.py has every case)."""
    with pytest.raises(ValidationError, match=problem):
        ServingSpec(model_name="house-price", image=image, runtime_sklearn_version="1.7")


@pytest.mark.parametrize(
    "image", ["ghcr.io/example/mlops@sha256:" + "a" * 64, "localhost:5000/mlops:abc1234"]
)
def test_a_pinned_image_is_a_tag_or_a_digest(image: str) -> None:
    spec = ServingSpec(model_name="house-price", image=image, runtime_sklearn_version="1.7")
    model = ServedModel(version=1, storage_uri=STABLE_URI)
    assert predictor_container(spec, model)["image"] == image


@pytest.mark.parametrize(
    ("model", "runtime", "compatible", "words"),
    [
        ("1.7.2", "1.7.0", True, "share 1.7"),
        ("1.6.1", "1.7.2", False, "1.6 != 1.7"),
        ("1.10.0", "1.1.3", False, "1.10 != 1.1"),
        ("1.7.2", "2.7.2", False, "1.7 != 2.7"),
        ("1.7.2", "latest", False, "'latest' is not of the form"),
    ],
)
def test_sklearn_runtime_check(model: str, runtime: str, compatible: bool, words: str) -> None:
    verdict = check_sklearn_runtime({"scikit-learn": model}, runtime)
    assert verdict.compatible is compatible
    assert words in verdict.reason


def test_sklearn_runtime_check_without_a_recorded_version() -> None:
    verdict = check_sklearn_runtime({"numpy": "2.0"}, "1.7.2")
    assert not verdict.compatible
    assert "no scikit-learn version" in verdict.reason


def test_serving_objects_carry_settings_and_placeholders_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_SERVING_S3_SECRET_KEY", "sentinel-secret-value")
    s3 = S3Spec.from_endpoint_url("http://minio.minio.svc:9000", region="eu-west-1")
    secret = render_s3_secret_template(SPEC)
    assert secret["metadata"]["name"] == SPEC.s3_secret
    assert secret["stringData"] == {
        "MLOPS_S3_ACCESS_KEY": "${MLOPS_SERVING_S3_ACCESS_KEY}",
        "MLOPS_S3_SECRET_KEY": "${MLOPS_SERVING_S3_SECRET_KEY}",
    }
    assert render_settings_config_map(SPEC, s3)["data"] == {
        "MLOPS_S3_ENDPOINT": "http://minio.minio.svc:9000",
        "MLOPS_BUCKET": "mlops",
        "MLOPS_S3_REGION": "eu-west-1",
    }
    account = render_service_account(SPEC)
    assert account["automountServiceAccountToken"] is False  # it never calls the API
    text = render_infra_yaml(REF, SPEC, s3, manifest(1))
    assert "sentinel-secret-value" not in text
    kinds = [doc["kind"] for doc in yaml.safe_load_all(text)]
    assert kinds == ["ServiceAccount", "ConfigMap", "Secret", "InferenceService"]
    assert_valid(list(yaml.safe_load_all(text))[3])


def test_secret_is_filled_at_apply_time_and_missing_values_are_named() -> None:
    template = render_s3_secret_template(SPEC)
    access, secret = "ak", "sk"  # pragma: allowlist secret (stand-ins, filled at apply time)
    values = {"MLOPS_SERVING_S3_ACCESS_KEY": access, "MLOPS_SERVING_S3_SECRET_KEY": secret}
    filled = fill_secret(template, values)
    assert filled["stringData"] == {"MLOPS_S3_ACCESS_KEY": access, "MLOPS_S3_SECRET_KEY": secret}
    assert template["stringData"]["MLOPS_S3_ACCESS_KEY"] == "${MLOPS_SERVING_S3_ACCESS_KEY}"
    with pytest.raises(ManifestError, match=r"\$MLOPS_SERVING_S3_SECRET_KEY"):
        fill_secret(template, {"MLOPS_SERVING_S3_ACCESS_KEY": "ak"})
    with pytest.raises(ManifestError, match="http"):
        S3Spec.from_endpoint_url("minio:9000")


def test_reading_the_split_and_readiness() -> None:
    live = canary(25) | {"metadata": canary()["metadata"] | {"generation": 2}}
    split = desired_split(live)
    assert (split.stable.version, split.canary and split.canary.version, split.percent) == (
        1,
        2,
        25,
    )
    pinned = apply_merge_patch(live, rollback_patch(SPEC, split.stable))
    assert desired_split(pinned).canary is None
    stale = live | {
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    }
    assert not readiness(stale).ready
    assert "generation 2 not yet observed" in readiness(stale).reason
    status = {
        "observedGeneration": 2,
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "latestReadyRevision": "r2",
                "latestCreatedRevision": "r2",
                "previousRolledoutRevision": "r0",
                "traffic": [
                    {"revisionName": "r2", "latestRevision": True, "percent": 25, "tag": "latest"},
                    {"revisionName": "r1", "latestRevision": False, "percent": 75, "tag": "prev"},
                ],
            }
        },
    }
    state = serving_state(live | {"status": status}, "house-price")
    assert (state.stable_version, state.canary_version, state.canary_percent, state.ready) == (
        1,
        2,
        25,
        True,
    )
    assert state.detail["latestReadyRevision"] == "r2"
    assert state.detail["previousRolledoutRevision"] == "r0"


def test_a_foreign_inference_service_is_named_not_misread() -> None:
    foreign = {
        "metadata": {"namespace": "models", "name": "iris", "labels": {}},
        "spec": {"predictor": {"model": {"storageUri": "s3://b/iris/"}}},
    }
    with pytest.raises(KServeError, match="models/iris is not one this project manages"):
        desired_split(foreign)
