"""The retrain pipeline's compiled package (KFP IR YAML): every task runs the pinned image, uncached,
with its environment from the cluster's ConfigMap and Secrets, which the cluster's manifests hold.
An untagged or `:latest` image is refused before anything compiles or is submitted."""

from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes.kubernetes_executor_config_pb2 import KubernetesExecutorConfig
from pydantic import ValidationError

from tasks.images import ImageRefused
from tasks.kubeflow.client import RetrainParams, SubmitOptions
from tasks.kubeflow.pipeline import compile_pipeline
from tasks.kubeflow.pods import PipelineConfig, pipeline_config

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/selfheal-mlops/selfheal-mlops:3f2c1d0"
DIGEST = "ghcr.io/selfheal-mlops/selfheal-mlops@sha256:" + "ab" * 32
CONFIG_MAP = {"MLOPS_S3_ENDPOINT", "MLOPS_BUCKET"}
S3_SECRET = {"MLOPS_S3_ACCESS_KEY", "MLOPS_S3_SECRET_KEY"}


def compiled(tmp_path: Path, image: str = IMAGE) -> tuple[dict, dict]:
    path = compile_pipeline(tmp_path / "retrain.yaml", PipelineConfig(image=image))
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def by_task(pipeline: dict, per_executor: dict) -> dict[str, dict]:
    """`per_executor` (keyed by executor label) keyed by the DAG task that runs it."""
    tasks = pipeline["root"]["dag"]["tasks"]
    labels = {
        name: pipeline["components"][task["componentRef"]["name"]]["executorLabel"]
        for name, task in tasks.items()
    }
    return {name: per_executor[label] for name, label in labels.items()}


def env_sources(config: dict) -> dict[str, tuple[str, str, str]]:
    """Each variable of a task's Kubernetes config: (kind, object name, key)."""
    found = {}
    for entry in config.get("configMapAsEnv", []):
        for pair in entry["keyToEnv"]:
            found[pair["envVar"]] = ("ConfigMap", entry["configMapName"], pair["configMapKey"])
    for entry in config.get("secretAsEnv", []):
        for pair in entry["keyToEnv"]:
            found[pair["envVar"]] = ("Secret", entry["secretName"], pair["secretKey"])
    return found


@pytest.mark.parametrize("image", [IMAGE, DIGEST])
def test_every_task_runs_the_pinned_image_uncached_with_env_from_the_configmap_and_secrets(
    tmp_path: Path, image: str
) -> None:
    pipeline, platform = compiled(tmp_path, image)
    tasks = pipeline["root"]["dag"]["tasks"]
    assert set(tasks) == {"validate-and-train", "register-candidate"}
    containers = by_task(
        pipeline, {k: v["container"] for k, v in pipeline["deploymentSpec"]["executors"].items()}
    )
    configs = by_task(pipeline, platform)
    expected = (
        {name: ("ConfigMap", "mlops-flow-settings", name) for name in CONFIG_MAP}
        | {name: ("Secret", "mlops-s3-training", name) for name in S3_SECRET}
        | {"MLOPS_MANIFEST_KEY": ("Secret", "mlops-manifest-key", "MLOPS_MANIFEST_KEY")}
    )
    for name, task in tasks.items():
        assert not task["cachingOptions"].get("enableCache"), name
        assert containers[name]["image"] == image, name
        assert "env" not in containers[name], "settings travel in the ConfigMap, not the package"
        assert "pip install" not in " ".join(containers[name]["command"])  # the image has it all
        assert env_sources(configs[name]) == expected, name
        for entry in configs[name]["configMapAsEnv"] + configs[name]["secretAsEnv"]:
            assert entry["optional"] is False  # a pod without them must not start
        # The backend's driver reads each task's config as this message; unknown fields fail.
        json_format.ParseDict(configs[name], KubernetesExecutorConfig())


def test_the_pipeline_takes_the_snapshot_and_the_run_configuration(tmp_path: Path) -> None:
    pipeline, _ = compiled(tmp_path)
    inputs = pipeline["root"]["inputDefinitions"]["parameters"]
    assert {name: item.get("isOptional", False) for name, item in inputs.items()} == {
        "data_uri": False, "config_uri": False, "model_name": True, "reason": True,
    }  # fmt: skip
    outputs = pipeline["root"]["outputDefinitions"]["parameters"]
    assert {name: item["parameterType"] for name, item in outputs.items()} == {
        "version": "NUMBER_INTEGER", "gate_summary": "STRING",
    }  # fmt: skip
    tasks = pipeline["root"]["dag"]["tasks"]
    assert tasks["register-candidate"]["dependentTasks"] == ["validate-and-train"]
    train = tasks["validate-and-train"]["inputs"]["parameters"]
    assert train["config_uri"]["componentInputParameter"] == "config_uri"


def manifests() -> dict[tuple[str, str], dict]:
    """Every ConfigMap and Secret of infra/k8s, by (kind, name): its keys and namespace."""
    found = {}
    for path in [ROOT / "infra/k8s/flows.yaml", *(ROOT / "infra/k8s/secrets").glob("*.yaml")]:
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") in {"ConfigMap", "Secret"}:
                data = document.get("data") or document.get("stringData") or {}
                key = (document["kind"], document["metadata"]["name"])
                found[key] = {"namespace": document["metadata"]["namespace"], "keys": set(data)}
    return found


def test_the_cluster_manifests_hold_every_object_and_key_the_pods_read(tmp_path: Path) -> None:
    _, platform = compiled(tmp_path)
    cluster = manifests()
    for config in platform.values():
        for variable, (kind, name, key) in env_sources(config).items():
            assert (kind, name) in cluster, f"{variable}: no {kind} {name} in infra/k8s"
            assert key in cluster[(kind, name)]["keys"], f"{variable}: {kind} {name} has no {key}"
            assert cluster[(kind, name)]["namespace"] == "mlops"


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("ghcr.io/selfheal-mlops/selfheal-mlops", "has no tag nor digest"),
        ("ghcr.io/selfheal-mlops/selfheal-mlops:latest", "is tagged latest"),
        ("localhost:5000/selfheal-mlops", "has no tag nor digest"),  # the port is not a tag
        ("ghcr.io/selfheal-mlops/selfheal-mlops:", "is not a valid tag"),
        ("ghcr.io/selfheal-mlops/selfheal-mlops@sha256:abc", "is not a digest"),
        ("ghcr.io/selfheal-mlops/selfheal-mlops:v 1", "whitespace"),
    ],
)
def test_an_unpinned_image_is_refused_before_compiling_or_submitting(
    tmp_path: Path, image: str, problem: str
) -> None:
    with pytest.raises(ImageRefused, match=problem):
        pipeline_config(image)
    with pytest.raises(ValidationError, match=problem):
        compile_pipeline(tmp_path / "retrain.yaml", PipelineConfig(image=image))
    with pytest.raises(ValidationError, match=problem):
        SubmitOptions(pipeline={"image": image})
    assert not (tmp_path / "retrain.yaml").exists()


@pytest.mark.parametrize(
    "image", [IMAGE, DIGEST, "localhost:5000/mlops:1.2", IMAGE + "@" + DIGEST.split("@")[1]]
)
def test_a_tag_or_a_digest_is_accepted(image: str) -> None:
    assert pipeline_config(image).image == image


def test_without_an_image_the_error_names_the_variable() -> None:
    for missing in (None, ""):
        with pytest.raises(ImageRefused, match="MLOPS_IMAGE is not set"):
            pipeline_config(missing)


def test_secrets_are_refused_in_the_configmap() -> None:
    with pytest.raises(ValidationError, match="must come from a Secret"):
        PipelineConfig(image=IMAGE, config_map_keys=("MLOPS_BUCKET", "MLOPS_MANIFEST_KEY"))


def test_a_run_trains_on_a_training_set_snapshot_only() -> None:
    config = "s3://mlops/staging/house-price/configs/" + "c" * 64 + ".json"
    snapshot = "s3://mlops/datasets/house-price/" + "d" * 64 + ".parquet"
    assert RetrainParams(data_uri=snapshot, config_uri=config).data_uri == snapshot
    with pytest.raises(ValidationError, match="data_uri"):  # a CSV can change under a version
        RetrainParams(data_uri="s3://mlops/datasets/house-price/new.csv", config_uri=config)
