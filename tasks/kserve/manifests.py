"""KServe objects as data: the InferenceService and the merge patches that move its canary.

Everything here is pure (no Kubernetes client, no I/O); `tasks/kserve/target.py` sends it.
The predictor is the project's own (`spec.predictor.containers`, the project's image running
infra/model_server_main.py for one version), not KServe's sklearn runtime: KServe's runtime
unpickles `model.joblib` without checking its sha256 or signature, and writes no serving logs.
Patches are JSON merge patches (RFC 7386), the form KServe's canary docs describe: start a
canary = the canary version's container + `canaryTrafficPercent`; promote = remove
`canaryTrafficPercent` (`null`); roll back = `canaryTrafficPercent: 0` with the container
pinned back to the stable version.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.images import checked_image
from tasks.registry.versions import Manifest

API_VERSION = "serving.kserve.io/v1beta1"
LABEL_MODEL = "mlops.selfheal.io/model"
LABEL_VERSION = "mlops.selfheal.io/model-version"
ANN_STABLE_VERSION = "mlops.selfheal.io/stable-version"
ANN_STABLE_URI = "mlops.selfheal.io/stable-storage-uri"
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"

Obj = dict[str, Any]


class ManifestError(ValueError):
    """Input that cannot become a valid KServe object; the message names the problem."""


class ObjectRef(BaseModel):
    """Which InferenceService: its namespace and name (DNS labels)."""

    model_config = ConfigDict(frozen=True)
    namespace: str = Field(pattern=DNS_LABEL)
    name: str = Field(pattern=DNS_LABEL, max_length=45, description="KServe appends suffixes")


class Resources(BaseModel):
    model_config = ConfigDict(frozen=True)
    cpu_request: str = Field("100m", pattern=QUANTITY)
    memory_request: str = Field("256Mi", pattern=QUANTITY)
    cpu_limit: str = Field("1", pattern=QUANTITY)
    memory_limit: str = Field("1Gi", pattern=QUANTITY)


PREDICTOR_PORT = 8080


class ServingSpec(BaseModel):
    """How one model is served on KServe: the project's own predictor in the project's image.

    Identity (namespace/name) lives in `ObjectRef`. The predictor reads its S3 settings from a
    ConfigMap, its read-only S3 identity and the manifest key from Secrets (envFrom).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    model_name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    image: str = Field(description="the project's image, pinned (tag or digest)")
    service_account: str = Field("mlops-serving", pattern=DNS_LABEL)
    settings_config_map: str = Field("mlops-serving-settings", pattern=DNS_LABEL)
    s3_secret: str = Field("mlops-s3-serving", pattern=DNS_LABEL)
    manifest_key_secret: str = Field("mlops-manifest-key", pattern=DNS_LABEL)
    runtime_sklearn_version: str = Field(description="scikit-learn inside the image")
    resources: Resources = Resources()

    @field_validator("image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        return checked_image(image)


class ServedModel(BaseModel):
    """A version as an InferenceService refers to it."""

    model_config = ConfigDict(frozen=True)
    version: int = Field(ge=1)
    storage_uri: str


def served(spec: ServingSpec, manifest: Manifest) -> ServedModel:
    """Check that a manifest belongs to this model and its storageUri is a registry version dir."""
    if manifest.name != spec.model_name:
        raise ManifestError(f"manifest is for model {manifest.name!r}, not {spec.model_name!r}")
    pattern = (
        rf"s3://[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9]/models/{manifest.name}/v{manifest.version}/"
    )
    if not re.fullmatch(pattern, manifest.storage_uri):
        raise ManifestError(
            f"{manifest.name} v{manifest.version}: storage_uri {manifest.storage_uri!r} is not "
            f"s3://<bucket>/models/{manifest.name}/v{manifest.version}/"
        )
    return ServedModel(version=manifest.version, storage_uri=manifest.storage_uri)


def _labels(spec: ServingSpec, version: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.model_name,
        "app.kubernetes.io/part-of": "selfheal-mlops",
        LABEL_MODEL: spec.model_name,
        LABEL_VERSION: str(version),
    }


def predictor_container(spec: ServingSpec, model: ServedModel) -> Obj:
    """The project's predictor serving exactly one version (infra/model_server_main.py): it
    verifies the version's signature and sha256 before unpickling, and writes the serving logs.

    A new version is a new container spec, hence a new Knative revision: the canary.
    """
    res = spec.resources
    return {
        "name": "kserve-container",
        "image": spec.image,
        "command": ["python", "-m", "infra.model_server_main"],
        "args": [
            "--model-name",
            spec.model_name,
            "--storage-uri",
            model.storage_uri,
            "--host",
            "0.0.0.0",
            "--port",
            str(PREDICTOR_PORT),
        ],
        "envFrom": [
            {"configMapRef": {"name": spec.settings_config_map}},
            {"secretRef": {"name": spec.s3_secret}},
            {"secretRef": {"name": spec.manifest_key_secret}},
        ],
        "ports": [{"containerPort": PREDICTOR_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{spec.model_name}", "port": PREDICTOR_PORT},
            "periodSeconds": 5,
        },
        "resources": {
            "requests": {"cpu": res.cpu_request, "memory": res.memory_request},
            "limits": {"cpu": res.cpu_limit, "memory": res.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def served_from_container(container: Obj) -> str:
    """The storage URI a rendered predictor container serves (its `--storage-uri` argument)."""
    args = container.get("args") or []
    return args[args.index("--storage-uri") + 1]


def _predictor(spec: ServingSpec, model: ServedModel) -> Obj:
    return {
        "serviceAccountName": spec.service_account,
        "containers": [predictor_container(spec, model)],
    }


def render_inference_service(ref: ObjectRef, spec: ServingSpec, manifest: Manifest) -> Obj:
    """The stable InferenceService: one version, 100% of traffic."""
    model = served(spec, manifest)
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": _labels(spec, model.version),
            "annotations": {TAG_ROUTING: "true"},
        },
        "spec": {"predictor": _predictor(spec, model)},
    }


def render_canary(
    ref: ObjectRef, spec: ServingSpec, stable: Manifest, canary: Manifest, percent: int
) -> Obj:
    """The same InferenceService with the canary's storageUri and `canaryTrafficPercent`."""
    patch = start_canary_patch(spec, served(spec, stable), served(spec, canary), percent)
    return apply_merge_patch(render_inference_service(ref, spec, canary), patch)


def _check_percent(percent: int, low: int = 0) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int) or not low <= percent <= 100:
        raise ManifestError(f"canary percent must be an integer {low}..100, got {percent!r}")
    return percent


def start_canary_patch(
    spec: ServingSpec, stable: ServedModel, canary: ServedModel, percent: int
) -> Obj:
    """The canary's predictor + canaryTrafficPercent; remembers the stable version for a
    rollback. A merge patch replaces a list whole: the container is sent complete."""
    if canary.version == stable.version:
        raise ManifestError(f"v{canary.version} is already the stable version, not a canary")
    return {
        "metadata": {
            "labels": {LABEL_VERSION: str(canary.version)},
            "annotations": {
                ANN_STABLE_VERSION: str(stable.version),
                ANN_STABLE_URI: stable.storage_uri,
            },
        },
        "spec": {
            "predictor": {
                "canaryTrafficPercent": _check_percent(percent, low=1),
                "containers": [predictor_container(spec, canary)],
            }
        },
    }


def canary_percent_patch(percent: int) -> Obj:
    return {"spec": {"predictor": {"canaryTrafficPercent": _check_percent(percent)}}}


def promote_patch() -> Obj:
    """Remove canaryTrafficPercent: the latest revision gets 100% (metadata untouched, so no
    new revision is created)."""
    return {"spec": {"predictor": {"canaryTrafficPercent": None}}}


def rollback_patch(spec: ServingSpec, stable: ServedModel) -> Obj:
    """0% to the canary (KServe sends 100% to the previous rolled-out revision) and pin the
    spec back to the stable predictor, so a later promote cannot promote the bad model."""
    return {
        "metadata": {"labels": {LABEL_VERSION: str(stable.version)}},
        "spec": {
            "predictor": {
                "canaryTrafficPercent": 0,
                "containers": [predictor_container(spec, stable)],
            }
        },
    }


def stable_patch(full_body: Obj) -> Obj:
    """Turn an existing InferenceService into `full_body` (a rendered stable one), removing
    the canary fields a merge would otherwise keep."""
    body = copy.deepcopy(full_body)
    annotations = body["metadata"].get("annotations", {})
    return {
        "metadata": {
            "labels": body["metadata"]["labels"],
            "annotations": annotations | {ANN_STABLE_VERSION: None, ANN_STABLE_URI: None},
        },
        "spec": body["spec"]
        | {"predictor": body["spec"]["predictor"] | {"canaryTrafficPercent": None}},
    }


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, returning a new object (`None` deletes a key)."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
