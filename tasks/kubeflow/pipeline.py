"""Kubeflow Pipelines: the retrain pipeline's definition and its compiled package.

The components are the functions of `tasks/kubeflow/components.py`, run on the project's image
pinned to the tag or digest CI built (nothing is pip-installed at run time). Every task reads its
environment from the cluster's ConfigMap and Secrets and is never cached (`pods.py`); what it
trains on and under arrive as S3 URIs: the training-set snapshot and the run configuration.

`tasks/kubeflow/client.py` submits runs of it.
"""

# No `from __future__ import annotations`: KFP reads the pipeline signature's real types.
from pathlib import Path
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl.graph_component import GraphComponent

from tasks.kubeflow.components import register_candidate, validate_and_train
from tasks.kubeflow.pods import PipelineConfig, configure
from tasks.settings import Settings

PIPELINE_NAME = "retrain"
MODEL_NAME = Settings.model_fields["model_name"]


class RetrainOutputs(NamedTuple):
    version: int
    gate_summary: str


def build_retrain_pipeline(config: PipelineConfig) -> GraphComponent:
    """The retrain pipeline: validate_and_train → register_candidate, on `config.image`."""
    train_op, register_op = (
        dsl.component(function, base_image=config.image, install_kfp_package=False)
        for function in (validate_and_train, register_candidate)
    )

    @dsl.pipeline(name=PIPELINE_NAME, description="Retrain, gate and register a model version.")
    def retrain(
        data_uri: str, config_uri: str, model_name: str = MODEL_NAME.default, reason: str = "manual"
    ) -> RetrainOutputs:
        trained = train_op(data_uri=data_uri, config_uri=config_uri, model_name=model_name)
        configure(trained, config)
        candidate = trained.outputs["candidate_uri"]
        registered = register_op(candidate_uri=candidate, model_name=model_name, reason=reason)
        configure(registered, config)
        return RetrainOutputs(registered.output, trained.outputs["gate_summary"])

    return retrain


def compile_pipeline(path: str | Path, config: PipelineConfig) -> Path:
    """Compile the retrain pipeline to a KFP YAML package at `path`."""
    path = Path(path)
    compiler.Compiler().compile(build_retrain_pipeline(config), str(path))
    return path
