"""Kubeflow Pipelines: the retrain pipeline's definition and its compiled package.

The components are the functions of `tasks/kubeflow/components.py`, built on an image that has this
project installed (nothing is pip-installed at run time). Every task gets the non-secret settings
as plain env vars and the S3 credentials from a Kubernetes Secret through the platform spec:

    kubectl -n <kfp-namespace> create secret generic mlops-s3 \\
        --from-literal=access_key=... --from-literal=secret_key=...

`tasks/kubeflow/client.py` submits runs of it.
"""

# No `from __future__ import annotations`: KFP reads the pipeline signature's real types.
from pathlib import Path
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl.graph_component import GraphComponent

from tasks.kubeflow.components import (
    SECRET_KEY_TO_ENV,
    PipelineConfig,
    register_candidate,
    validate_and_train,
)
from tasks.settings import Settings

PIPELINE_NAME = "retrain"
MODEL_NAME = Settings.model_fields["model_name"]


class RetrainOutputs(NamedTuple):
    version: int
    gate_summary: str


def use_secret_as_env(task: dsl.PipelineTask, secret: str, key_to_env: dict[str, str]) -> None:
    """Expose a Secret's keys as env vars: the `secretAsEnv` platform-spec entry that
    kfp-kubernetes' `kubernetes.use_secret_as_env` writes (that package is not a dependency)."""
    kubernetes = task.platform_config.setdefault("kubernetes", {})
    pairs = [{"secretKey": key, "envVar": env} for key, env in key_to_env.items()]
    kubernetes.setdefault("secretAsEnv", []).append({"secretName": secret, "keyToEnv": pairs})


def _configure(task: dsl.PipelineTask, config: PipelineConfig) -> dsl.PipelineTask:
    # A cached retrain would reuse an old candidate, a cached register would register nothing.
    task.set_caching_options(enable_caching=False)
    for name, value in sorted(config.env.items()):
        task.set_env_variable(name, value)
    use_secret_as_env(task, config.s3_secret, SECRET_KEY_TO_ENV)
    return task


def build_retrain_pipeline(config: PipelineConfig | None = None) -> GraphComponent:
    """The retrain pipeline: validate_and_train → register_candidate, built on `config.image`."""
    config = config or PipelineConfig()
    train_op, register_op = (
        dsl.component(function, base_image=config.image, install_kfp_package=False)
        for function in (validate_and_train, register_candidate)
    )

    @dsl.pipeline(name=PIPELINE_NAME, description="Retrain, gate and register a model version.")
    def retrain(
        data_uri: str, model_name: str = MODEL_NAME.default, reason: str = "manual"
    ) -> RetrainOutputs:
        trained = _configure(train_op(data_uri=data_uri, model_name=model_name), config)
        candidate = trained.outputs["candidate_uri"]
        registered = register_op(candidate_uri=candidate, model_name=model_name, reason=reason)
        _configure(registered, config)
        return RetrainOutputs(registered.output, trained.outputs["gate_summary"])

    return retrain


def compile_pipeline(path: str | Path, config: PipelineConfig | None = None) -> Path:
    """Compile the retrain pipeline to a KFP YAML package at `path`."""
    path = Path(path)
    compiler.Compiler().compile(build_retrain_pipeline(config), str(path))
    return path
