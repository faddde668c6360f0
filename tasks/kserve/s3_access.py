"""How the predictor reaches S3: its ServiceAccount, the ConfigMap of its non-secret settings,
the Secret *template* of its S3 identity (`${MLOPS_SERVING_S3_*}` placeholders, never values),
and the one YAML of them written under `infra/`.

The predictor is the project's own process (tasks/kserve/manifests.py): it reads S3 itself with
the MLOPS_* settings, so no KServe storage-initializer annotations are needed. The manifest key
comes from the `mlops-manifest-key` Secret the flows use too (infra/k8s/secrets/).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tasks.kserve.manifests import (
    LABEL_MODEL,
    ManifestError,
    Obj,
    ObjectRef,
    ServingSpec,
    render_inference_service,
)
from tasks.registry.versions import Manifest

ACCESS_KEY_VAR = "MLOPS_SERVING_S3_ACCESS_KEY"
SECRET_KEY_VAR = "MLOPS_SERVING_S3_SECRET_KEY"  # pragma: allowlist secret (a variable name)
PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


class S3Spec(BaseModel):
    """Where the predictor finds the registry (no credentials here)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    endpoint_url: str = Field(pattern=r"^https?://[a-zA-Z0-9.-]+(:[0-9]{1,5})?/?$")
    bucket: str = Field("mlops", min_length=3, max_length=63)
    region: str = Field("us-east-1", min_length=1)

    @classmethod
    def from_endpoint_url(cls, url: str, **extra: Any) -> S3Spec:
        if not re.fullmatch(r"https?://[a-zA-Z0-9.-]+(:[0-9]{1,5})?/?", url):
            raise ManifestError(f"S3 endpoint {url!r} is not http(s)://host[:port]")
        return cls(endpoint_url=url, **extra)


# -- the predictor's identity and settings ------------------------------------------------------
def render_service_account(spec: ServingSpec) -> Obj:
    """The ServiceAccount the predictor runs as: no API token mounted, it never calls the API."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": spec.service_account, "labels": {LABEL_MODEL: spec.model_name}},
        "automountServiceAccountToken": False,
    }


def render_settings_config_map(spec: ServingSpec, s3: S3Spec) -> Obj:
    """The predictor's non-secret MLOPS_* settings (tasks/settings.py), loaded with envFrom."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": spec.settings_config_map, "labels": {LABEL_MODEL: spec.model_name}},
        "data": {
            "MLOPS_S3_ENDPOINT": s3.endpoint_url.rstrip("/"),
            "MLOPS_BUCKET": s3.bucket,
            "MLOPS_S3_REGION": s3.region,
        },
    }


def render_s3_secret_template(spec: ServingSpec) -> Obj:
    """The serving S3 identity as MLOPS_S3_* keys, `${MLOPS_SERVING_S3_*}` filled at apply."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": spec.s3_secret, "labels": {LABEL_MODEL: spec.model_name}},
        "stringData": {
            "MLOPS_S3_ACCESS_KEY": f"${{{ACCESS_KEY_VAR}}}",
            "MLOPS_S3_SECRET_KEY": f"${{{SECRET_KEY_VAR}}}",
        },
    }


def fill_secret(template: Obj, values: Mapping[str, str]) -> Obj:
    """The Secret to send to the API (never to write to disk): placeholders replaced."""

    def fill(text: str) -> str:
        for var in PLACEHOLDER.findall(text):
            if not values.get(var):
                raise ManifestError(f"secret {template['metadata']['name']!r} needs ${var}")
        return PLACEHOLDER.sub(lambda match: values[match[1]], text)

    filled = copy.deepcopy(template)
    filled["stringData"] = {key: fill(text) for key, text in template["stringData"].items()}
    return filled


def render_infra_yaml(ref: ObjectRef, spec: ServingSpec, s3: S3Spec, manifest: Manifest) -> str:
    """ServiceAccount, ConfigMap, Secret template and the stable InferenceService, one YAML."""
    docs = [
        render_service_account(spec),
        render_settings_config_map(spec, s3),
        render_s3_secret_template(spec),
    ]
    docs = [doc | {"metadata": doc["metadata"] | {"namespace": ref.namespace}} for doc in docs]
    docs.append(render_inference_service(ref, spec, manifest))
    return yaml.safe_dump_all(docs, sort_keys=False)
