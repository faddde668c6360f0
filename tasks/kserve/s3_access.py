"""How predictors reach S3: the ServiceAccount and the Secret *template* KServe reads (with
`${MLOPS_S3_*}` placeholders, never values), and the one YAML of them written under `infra/`."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tasks.kserve.manifests import (
    DNS_LABEL,
    LABEL_MODEL,
    ManifestError,
    Obj,
    ObjectRef,
    ServingSpec,
    render_inference_service,
)
from tasks.registry.versions import Manifest

ACCESS_KEY_VAR = "MLOPS_S3_ACCESS_KEY"


SECRET_KEY_VAR = "MLOPS_S3_SECRET_KEY"  # pragma: allowlist secret (a variable name)


PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


class S3Spec(BaseModel):
    """Where KServe's storage initializer downloads models from (no credentials here)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    secret_name: str = Field("kserve-s3-credentials", pattern=DNS_LABEL)
    endpoint: str = Field(pattern=r"^[a-zA-Z0-9.-]+(:[0-9]{1,5})?$", description="host[:port]")
    use_https: bool = True
    verify_ssl: bool = True
    region: str = Field("us-east-1", min_length=1)

    @classmethod
    def from_endpoint_url(cls, url: str, region: str = "us-east-1", **extra: Any) -> S3Spec:
        """`http://minio.minio:9000` -> endpoint `minio.minio:9000`, use_https False."""
        match = re.fullmatch(r"(https?)://([^/]+)/?", url)
        if not match:
            raise ManifestError(f"S3 endpoint {url!r} is not http(s)://host[:port]")
        return cls(endpoint=match[2], use_https=match[1] == "https", region=region, **extra)


# -- S3 credentials: a ServiceAccount and a Secret *template* (placeholders, never values) ------
def render_service_account(spec: ServingSpec, s3: S3Spec) -> Obj:
    """The ServiceAccount the predictor runs as; KServe finds the S3 Secret through it."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": spec.service_account, "labels": {LABEL_MODEL: spec.model_name}},
        "secrets": [{"name": s3.secret_name}],
    }


def render_s3_secret_template(spec: ServingSpec, s3: S3Spec) -> Obj:
    """KServe's S3 annotations, and `${MLOPS_S3_*}` placeholders filled only at apply time."""
    flag = {True: "1", False: "0"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": s3.secret_name,
            "labels": {LABEL_MODEL: spec.model_name},
            "annotations": {
                "serving.kserve.io/s3-endpoint": s3.endpoint,
                "serving.kserve.io/s3-usehttps": flag[s3.use_https],
                "serving.kserve.io/s3-verifyssl": flag[s3.verify_ssl],
                "serving.kserve.io/s3-region": s3.region,
            },
        },
        "stringData": {
            "AWS_ACCESS_KEY_ID": f"${{{ACCESS_KEY_VAR}}}",
            "AWS_SECRET_ACCESS_KEY": f"${{{SECRET_KEY_VAR}}}",
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
    """ServiceAccount, Secret template and stable InferenceService as one YAML for `infra/`."""
    docs = [render_service_account(spec, s3), render_s3_secret_template(spec, s3)]
    docs = [doc | {"metadata": doc["metadata"] | {"namespace": ref.namespace}} for doc in docs]
    docs.append(render_inference_service(ref, spec, manifest))
    return yaml.safe_dump_all(docs, sort_keys=False)
