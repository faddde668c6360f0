"""How the retrain pipeline's pods are configured: the pinned image they run, the ConfigMap and
Secrets their environment comes from (through kfp-kubernetes), and no caching.

Every task of the pipeline gets, as environment variables (the cluster's objects, by default):

    ConfigMap mlops-flow-settings   MLOPS_S3_ENDPOINT, MLOPS_BUCKET          infra/k8s/flows.yaml
    Secret mlops-s3-training        MLOPS_S3_ACCESS_KEY, MLOPS_S3_SECRET_KEY infra/k8s/secrets/
    Secret mlops-manifest-key       MLOPS_MANIFEST_KEY                       infra/k8s/secrets/

They must exist in the namespace the pipeline's pods run in. What the model trains under (contract,
gate, training policy) is not here: the submitting flow publishes it to S3 (run_config.py).
"""

from __future__ import annotations

from kfp import dsl, kubernetes
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.images import IMAGE_VARIABLE, ImageRefused, checked_image

# The Secrets' keys are the variables' names (the flow-run Jobs load the same Secrets whole).
S3_KEYS = ("MLOPS_S3_ACCESS_KEY", "MLOPS_S3_SECRET_KEY")
MANIFEST_KEY = "MLOPS_MANIFEST_KEY"
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class PipelineConfig(BaseModel):
    """The pods' image and the Kubernetes objects their environment comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field(
        min_length=1, description="the project's image, pinned: :<tag> (not latest) or @sha256"
    )
    config_map: str = Field(
        "mlops-flow-settings", pattern=K8S_NAME, description="ConfigMap of non-secret settings"
    )
    config_map_keys: tuple[str, ...] = Field(
        ("MLOPS_S3_ENDPOINT", "MLOPS_BUCKET"),
        min_length=1,
        description="its keys the pods read, each the variable of the same name",
    )
    s3_secret: str = Field(
        "mlops-s3-training", pattern=K8S_NAME, description=f"Secret with keys {', '.join(S3_KEYS)}"
    )
    manifest_key_secret: str = Field(
        "mlops-manifest-key", pattern=K8S_NAME, description=f"Secret with key {MANIFEST_KEY}"
    )

    @field_validator("image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        return checked_image(image)

    @field_validator("config_map_keys")
    @classmethod
    def _no_secrets(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        leaked = sorted(set(keys) & {*S3_KEYS, MANIFEST_KEY})
        if leaked:
            raise ValueError(f"{leaked} must come from a Secret, not the ConfigMap")
        return keys


def pipeline_config(image: str | None) -> PipelineConfig:
    """The pipeline's configuration for `image` (Settings.image); ImageRefused if unusable."""
    if not image:
        raise ImageRefused(
            f"{IMAGE_VARIABLE} is not set: name the image CI built (registry/name:<tag> or "
            "@sha256:<digest>) for the pipeline's pods"
        )
    return PipelineConfig(image=checked_image(image))


def configure(task: dsl.PipelineTask, config: PipelineConfig) -> dsl.PipelineTask:
    """No caching, and the environment from the ConfigMap and the Secrets."""
    # A cached retrain would reuse an old candidate, a cached register would register nothing.
    task.set_caching_options(enable_caching=False)
    keys = {key: key for key in config.config_map_keys}
    kubernetes.use_config_map_as_env(task, config.config_map, keys)
    kubernetes.use_secret_as_env(task, config.s3_secret, {key: key for key in S3_KEYS})
    kubernetes.use_secret_as_env(task, config.manifest_key_secret, {MANIFEST_KEY: MANIFEST_KEY})
    return task
