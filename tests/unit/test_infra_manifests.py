"""The production manifests in infra/: parsed, checked against real schemas, kept in step.

No Kubernetes API server can run here, so these are the checks a cluster would make before
accepting the objects (the `kubernetes` client's models, KServe's CRD), plus the policy this
project sets for itself: no credential in a file, namespaced least-privilege RBAC, one S3
identity per job. `kubectl kustomize` is used where kubectl is installed (it needs no cluster).
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import json
import re
import shutil
import subprocess
import tomllib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes.client import ApiClient

from tasks.kserve.manifests import ObjectRef, ServingSpec
from tasks.kserve.s3_access import S3Spec, render_infra_yaml
from tasks.registry.versions import DataSummary, Manifest
from tasks.settings import Settings, get_settings, known_variables
from tests.support.standins.k8s_api import strict_schema

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INFRA = PROJECT_ROOT / "infra"
K8S = INFRA / "k8s"
POLICIES = K8S / "minio-policies"
JOB_TEMPLATE = INFRA / "prefect" / "kubernetes-base-job-template.json"
CRD = PROJECT_ROOT / "infra" / "crds" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
NAMESPACE = "mlops"
PLACEHOLDER = re.compile(r"\$\{[A-Z_][A-Z0-9_]*\}")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
CREDENTIAL_ENV = re.compile(r"(PASSWORD|ACCESS_KEY|ACCESS_KEY_ID|API_KEY|S3_SECRET_KEY|ROOT_USER)$")

Obj = dict[str, Any]


# -- loading ------------------------------------------------------------------------------------
def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@cache
def docs_in(path: Path) -> tuple[Obj, ...]:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)


def all_objects() -> list[tuple[Path, Obj]]:
    return [(path, doc) for path in manifest_files() for doc in docs_in(path)]


def objects(kind: str) -> list[Obj]:
    return [doc for _, doc in all_objects() if doc["kind"] == kind]


def one(kind: str, name: str) -> Obj:
    (found,) = [doc for doc in objects(kind) if doc["metadata"]["name"] == name]
    return found


def container(workload: Obj) -> Obj:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def env_of(c: Obj) -> dict[str, Obj]:
    return {entry["name"]: entry for entry in c.get("env", [])}


# -- the renderer's inputs: what the committed serving objects must equal ----------------------
EXAMPLE_IMAGE = "ghcr.io/selfheal-mlops/selfheal-mlops:example"  # the deploy flow pins CI's


def rendered_serving_yaml() -> str:
    """ServiceAccount, ConfigMap, S3 Secret template and InferenceService for house-price v1."""
    settings = get_settings()
    ref = ObjectRef(namespace=NAMESPACE, name=settings.inference_service)
    spec = ServingSpec(
        model_name=settings.model_name, image=EXAMPLE_IMAGE, runtime_sklearn_version="1.7"
    )
    s3 = S3Spec.from_endpoint_url(
        "http://minio.mlops.svc.cluster.local:9000",
        bucket=settings.bucket,
        region=settings.s3_region,
    )
    manifest = Manifest(
        name=settings.model_name,
        version=1,
        sha256="0" * 64,
        size_bytes=1,
        storage_uri=f"s3://{settings.bucket}/models/{settings.model_name}/v1/",
        features=["sqft"],
        target="price",
        metrics={},
        data=DataSummary(digest="d", rows=1),
        contract={},
        git_revision="example",
        params={},
        library_versions={"scikit-learn": "1.7"},
        parent=None,
        created_at=datetime.now(UTC),
        created_by="infra",
    )
    return render_infra_yaml(ref, spec, s3, manifest)


def rendered_serving_docs() -> list[Obj]:
    return list(yaml.safe_load_all(rendered_serving_yaml()))


# -- parsing, kustomize, namespaces -------------------------------------------------------------
def test_every_manifest_parses_to_named_kubernetes_objects() -> None:
    assert manifest_files(), "no manifests under infra/k8s"
    for path, doc in all_objects():
        assert isinstance(doc, dict), path
        for field in ("apiVersion", "kind"):
            assert isinstance(doc.get(field), str) and doc[field], f"{path}: no {field}"
        name = doc.get("metadata", {}).get("name", "")
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), f"{path}: name {name!r}"


def test_each_kustomization_lists_exactly_the_files_beside_it() -> None:
    directories = {path.parent for path in manifest_files()}
    for directory in directories:
        kustomization = directory / "kustomization.yaml"
        assert kustomization.exists(), f"{directory} has manifests but no kustomization.yaml"
        spec = yaml.safe_load(kustomization.read_text())
        assert spec["kind"] == "Kustomization"
        assert spec.get("namespace") == NAMESPACE, f"{kustomization}: namespace"
        listed = spec.get("resources", [])
        assert len(listed) == len(set(listed)), f"{kustomization} lists a file twice"
        present = {path.name for path in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert set(listed) == present, f"{kustomization}: lists {listed}, directory has {present}"


def test_the_base_kustomization_holds_no_secret() -> None:
    """`kubectl apply -k infra/k8s` must be safe: templates live in secrets/ only."""
    for path, doc in all_objects():
        if doc["kind"] == "Secret":
            assert path.parent == K8S / "secrets", f"{path}: a Secret outside secrets/"
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert not any("secret" in entry for entry in base), base


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not found")
@pytest.mark.parametrize("directory", ["", "secrets", "serving"])
def test_kubectl_kustomize_builds_exactly_the_listed_objects(directory: str) -> None:
    root = K8S / directory
    built = subprocess.run(
        ["kubectl", "kustomize", str(root)], capture_output=True, text=True, check=True
    ).stdout
    key = lambda doc: (doc["kind"], doc["metadata"]["name"])  # noqa: E731
    expected = sorted(
        (doc for path in manifest_files() if path.parent == root for doc in docs_in(path)), key=key
    )
    assert sorted(yaml.safe_load_all(built), key=key) == expected


def test_every_object_lives_in_the_mlops_namespace() -> None:
    for path, doc in all_objects():
        metadata = doc["metadata"]
        if doc["kind"] == "Namespace":
            assert metadata["name"] == NAMESPACE
        else:
            assert doc["kind"] not in CLUSTER_SCOPED, f"{path}: cluster-scoped {doc['kind']}"
            assert metadata.get("namespace") == NAMESPACE, f"{path}: {doc['kind']} namespace"


# -- shapes: the kubernetes client's models and KServe's CRD ------------------------------------
class _Response:
    def __init__(self, obj: Obj) -> None:
        self.data = json.dumps(obj)


def roundtrip(obj: Obj) -> Obj:
    """Through the client's typed model and back: a misspelt field is dropped, so it shows."""
    group_version = obj["apiVersion"].rsplit("/", 1)[-1]
    model = f"{group_version.capitalize()}{obj['kind']}"
    client = ApiClient()
    return client.sanitize_for_serialization(client.deserialize(_Response(obj), model))


def test_core_objects_survive_the_kubernetes_client_models_unchanged() -> None:
    checked = 0
    for path, doc in all_objects():
        if doc["apiVersion"].startswith("serving.kserve.io/"):
            continue
        assert roundtrip(doc) == doc, f"{path}: {doc['kind']} {doc['metadata']['name']}"
        checked += 1
    assert checked >= 10


def test_roundtrip_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(one("Deployment", "minio"))
    deployment["spec"]["template"]["spec"]["serviceAcountName"] = "typo"
    assert roundtrip(deployment) != deployment


@cache
def crd_validator() -> jsonschema.Draft7Validator:
    crd = yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1beta1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return jsonschema.Draft7Validator(strict_schema(v1beta1["schema"]["openAPIV3Schema"]))


def test_the_inference_service_validates_against_kserve_crd() -> None:
    (isvc,) = objects("InferenceService")
    errors = [error.message for error in crd_validator().iter_errors(isvc)]
    assert not errors, errors
    broken = copy.deepcopy(isvc)
    broken["spec"]["predictor"]["containers"][0]["envFrm"] = []
    assert list(crd_validator().iter_errors(broken))


def test_the_inference_service_is_the_one_the_deploy_flow_renders() -> None:
    (isvc,) = docs_in(K8S / "serving" / "house-price.yaml")
    predictor = isvc["spec"]["predictor"]
    (predictor_container,) = predictor["containers"]
    assert "s3://mlops/models/house-price/v1/" in predictor_container["args"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"] == "true"
    assert predictor["serviceAccountName"] in {
        sa["metadata"]["name"] for sa in objects("ServiceAccount")
    }
    committed = [
        *docs_in(K8S / "serving-identity.yaml"),
        *docs_in(K8S / "secrets" / "s3-serving.yaml"),
        isvc,
    ]
    assert committed == rendered_serving_docs()


def test_the_predictor_finds_what_it_reads_in_the_cluster() -> None:
    """Every ConfigMap and Secret the predictor loads exists, with valid MLOPS_* settings."""
    (isvc,) = objects("InferenceService")
    (predictor_container,) = isvc["spec"]["predictor"]["containers"]
    env: dict[str, str] = {}
    for source in predictor_container["envFrom"]:
        kind, ref = next(iter(source.items()))
        found = one({"configMapRef": "ConfigMap", "secretRef": "Secret"}[kind], ref["name"])
        env |= found.get("data", {}) | found.get("stringData", {})
    assert set(env) <= known_variables(), set(env) - known_variables()
    assert {"MLOPS_S3_ENDPOINT", "MLOPS_S3_ACCESS_KEY", "MLOPS_MANIFEST_KEY"} <= set(env)
    port = next(p["port"] for p in one("Service", "minio")["spec"]["ports"] if p["name"] == "s3")
    assert env["MLOPS_S3_ENDPOINT"] == f"http://minio.{NAMESPACE}.svc.cluster.local:{port}"
    # The serving Secret holds the serving identity's placeholders, never the training ones.
    assert "SERVING" in env["MLOPS_S3_ACCESS_KEY"] and "TRAINING" not in env["MLOPS_S3_SECRET_KEY"]


# -- credentials --------------------------------------------------------------------------------
def test_no_secret_carries_a_literal_credential() -> None:
    secrets = objects("Secret")
    assert {s["metadata"]["name"] for s in secrets} >= {
        "minio-root",
        "mlops-s3-training",
        "mlops-s3-serving",
        "prefect-api",
        "mlops-manifest-key",
    }
    for secret in secrets:
        values = {**secret.get("data", {}), **secret.get("stringData", {})}
        assert values, secret["metadata"]["name"]
        for key, value in values.items():
            assert PLACEHOLDER.fullmatch(str(value)), f"{secret['metadata']['name']}.{key}"


def test_credential_variables_come_from_secrets_only() -> None:
    secret_keys = {
        (s["metadata"]["name"], key) for s in objects("Secret") for key in s.get("stringData", {})
    }
    for kind in ("Deployment", "StatefulSet"):
        for workload in objects(kind):
            for name, entry in env_of(container(workload)).items():
                if CREDENTIAL_ENV.search(name):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    assert ref, f"{workload['metadata']['name']}: {name} is not from a Secret"
                    assert (ref["name"], ref["key"]) in secret_keys, ref
    for config in objects("ConfigMap"):
        assert not any(CREDENTIAL_ENV.search(key) for key in config["data"]), config["data"]


def test_every_placeholder_is_filled_by_the_readme_command() -> None:
    readme = (INFRA / "README.md").read_text()
    (line,) = [x for x in readme.splitlines() if x.startswith("MLOPS_SECRET_VARS=")]
    filled = set(re.findall(r"\$([A-Z_][A-Z0-9_]*)", line))
    used = {
        match[2:-1]
        for secret in objects("Secret")
        for value in secret.get("stringData", {}).values()
        for match in PLACEHOLDER.findall(value)
    }
    assert used == filled


def test_minio_reads_its_credentials_from_a_secret() -> None:
    env = env_of(container(one("Deployment", "minio")))
    for name in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "minio-root", "key": name}
    volumes = one("Deployment", "minio")["spec"]["template"]["spec"]["volumes"]
    claims = {
        v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
    }
    assert claims == {one("PersistentVolumeClaim", "minio-data")["metadata"]["name"]}


# -- RBAC and the worker ------------------------------------------------------------------------
# What prefect-kubernetes' worker and observer call (infra/k8s/prefect-worker.yaml cites each
# line): no events, no Secrets, no InferenceServices (flow runs drive those, as mlops-flows).
WORKER_RULES = {
    ("", "pods"): {"list", "watch"},
    ("", "pods/log"): {"get"},
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
}
# kubernetes_asyncio's method names: <verb>_namespaced_<resource>(...)
CALL_VERBS = {"create": "create", "read": "get", "list": "list", "delete": "delete",
              "patch": "patch", "replace": "update"}  # fmt: skip
CALL_RESOURCES = {"job": ("batch", "jobs"), "pod": ("", "pods"), "pod_log": ("", "pods/log"),
                  "secret": ("", "secrets")}  # fmt: skip


def grants(role: Obj) -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def required_grants(source: str) -> dict[tuple[str, str], set[str]]:
    """The grants Python source calls for: each Kubernetes client call, and each resource a
    kopf handler lists and watches."""
    needed: dict[tuple[str, str], set[str]] = {}
    calls = re.findall(r"\b(create|read|list|delete|patch|replace)_namespaced_(\w+?)\(", source)
    for verb, resource in calls:  # a resource missing from CALL_RESOURCES is a KeyError: look
        needed.setdefault(CALL_RESOURCES[resource], set()).add(CALL_VERBS[verb])
    for watched in re.findall(r'kopf\.on\.event\(\s*(?:"batch",\s*"v1",\s*)?"(\w+)"', source):
        group = "batch" if watched == "jobs" else ""
        needed.setdefault((group, watched), set()).update({"list", "watch"})
    return needed


def worker_source() -> str:
    """prefect-kubernetes' worker and observer as installed (the version uv.lock pins)."""
    from importlib.util import find_spec

    spec = find_spec("prefect_kubernetes")
    assert spec is not None and spec.submodule_search_locations
    package = Path(spec.submodule_search_locations[0])
    return "".join((package / name).read_text() for name in ("worker.py", "observer.py"))


def test_the_worker_role_grants_exactly_what_the_worker_needs() -> None:
    role = grants(one("Role", "prefect-worker"))
    assert role == WORKER_RULES
    for verbs in role.values():
        assert not verbs & {"patch", "update", "deletecollection", "escalate", "bind"}, verbs
    assert not any(group == "serving.kserve.io" for group, _ in role), "flow runs drive KServe"
    assert ("", "events") not in role and ("", "secrets") not in role


def test_the_worker_role_is_what_the_locked_prefect_kubernetes_calls() -> None:
    """Read from the installed package's source, so an upgrade that calls something new (or
    stops calling something) fails here until the Role and its comments are derived again."""
    from importlib.metadata import version

    needed = required_grants(worker_source())
    # Its Secret calls are switched off by the worker's settings: the API key goes by reference
    # (test_the_worker_polls_...), plain env is not moved into a Secret.
    needed.pop(("", "secrets"))
    env = env_of(container(one("Deployment", "prefect-worker")))
    assert "PREFECT_INTEGRATIONS_KUBERNETES_WORKER_STORE_ENV_AS_SECRET" not in env
    assert "PREFECT_INTEGRATIONS_KUBERNETES_WORKER_CREATE_SECRET_FOR_API_KEY" not in env
    assert needed == WORKER_RULES, f"prefect-kubernetes {version('prefect-kubernetes')}"


def test_the_grant_scan_sees_calls_and_watches() -> None:
    source = 'await v1.read_namespaced_pod(name=n)\n@kopf.on.event(\n  "batch",\n  "v1", "jobs")'
    assert required_grants(source) == {("", "pods"): {"get"}, ("batch", "jobs"): {"list", "watch"}}


def test_nothing_is_cluster_wide_and_nothing_is_a_wildcard() -> None:
    kinds = {doc["kind"] for _, doc in all_objects()}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    for role in objects("Role"):
        for (group, resource), verbs in grants(role).items():
            assert "*" not in {group, resource, *verbs}, role["metadata"]["name"]
        assert ("", "secrets") not in grants(role), "no identity here may read Secrets"


def test_each_role_is_bound_to_its_own_service_account() -> None:
    accounts = {sa["metadata"]["name"] for sa in objects("ServiceAccount")}
    bound = set()
    for binding in objects("RoleBinding"):
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": binding["metadata"]["name"],
        }
        (subject,) = binding["subjects"]
        assert subject == {
            "kind": "ServiceAccount",
            "name": subject["name"],
            "namespace": NAMESPACE,
        }
        assert subject["name"] in accounts
        bound.add((binding["roleRef"]["name"], subject["name"]))
    assert bound == {("prefect-worker", "prefect-worker"), ("mlops-flows", "mlops-flows")}


def test_flow_runs_may_create_and_patch_the_inference_service_but_not_delete_it() -> None:
    assert grants(one("Role", "mlops-flows")) == {
        ("serving.kserve.io", "inferenceservices"): {"get", "list", "watch", "create", "patch"}
    }


def test_the_worker_polls_the_kubernetes_pool_with_the_api_from_a_secret() -> None:
    worker = one("Deployment", "prefect-worker")
    pod = worker["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "prefect-worker"
    c = container(worker)
    command = " ".join([*c.get("command", []), *c.get("args", [])])
    assert "prefect worker start --pool mlops-kubernetes --type kubernetes" in command
    env = env_of(c)
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "prefect-api", "key": name}
    # without it the observer watches every namespace and the namespaced Role is not enough
    assert env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"]["value"] == NAMESPACE
    assert (
        env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME"]["value"] == "prefect-api"
    )
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_flow_settings_are_valid_mlops_settings_for_kubernetes() -> None:
    data = one("ConfigMap", "mlops-flow-settings")["data"]
    assert all(key.startswith("MLOPS_") for key in data)
    assert set(data) <= known_variables(), set(data) - known_variables()
    fields = {key.removeprefix("MLOPS_").lower(): value for key, value in data.items()}
    settings = Settings(**fields)
    assert settings.serving_target == "kubernetes"
    assert settings.kserve_namespace == NAMESPACE
    port = next(p["port"] for p in one("Service", "minio")["spec"]["ports"] if p["name"] == "s3")
    assert settings.s3_endpoint == f"http://minio.{NAMESPACE}.svc.cluster.local:{port}"
    (isvc,) = objects("InferenceService")
    assert settings.inference_service == isvc["metadata"]["name"]


# -- MinIO policies -----------------------------------------------------------------------------
def policy(name: str) -> Obj:
    return json.loads((POLICIES / f"{name}.json").read_text())


def allows(doc: Obj, action: str, resource: str, prefix: str | None = None) -> bool:
    """A small IAM evaluator (Allow statements, Action/Resource globs, StringLike s3:prefix)."""
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow"
        if not any(fnmatch.fnmatchcase(action, a) for a in statement["Action"]):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in statement["Resource"]):
            continue
        like = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if like is None or (
            prefix is not None and any(fnmatch.fnmatchcase(prefix, p) for p in like)
        ):
            return True
    return False


BUCKET, OBJ = "arn:aws:s3:::mlops", "arn:aws:s3:::mlops/"


@pytest.mark.parametrize("name", ["serving-house-price", "training-readwrite"])
def test_policies_are_limited_to_the_mlops_bucket(name: str) -> None:
    doc = policy(name)
    assert doc["Version"] == "2012-10-17"
    for statement in doc["Statement"]:
        for resource in statement["Resource"]:
            assert resource == BUCKET or resource.startswith(OBJ), resource
        assert all(action.startswith("s3:") and "*" not in action for action in statement["Action"])


def test_the_committed_policies_are_the_rendered_ones() -> None:
    """What the operator applies (infra/README.md, step 4) is what the local servers get."""
    from infra.s3_policies import policy_file, render

    assert policy_file("training").read_text() == render("training")
    assert policy_file("serving", "house-price").read_text() == render("serving", "house-price")
    # no other file: a leftover bucket-wide serving policy could be applied by mistake
    assert {path.name for path in POLICIES.iterdir()} == {
        "training-readwrite.json",
        "serving-house-price.json",
    }


def test_a_serving_policy_is_only_for_a_plain_model_name() -> None:
    from infra.s3_policies import serving_policy

    assert serving_policy("fraud-v2")["Statement"][1]["Resource"][0].endswith("/fraud-v2/aliases/*")
    for name in ("*", "house-price/*", "a?", "House", ""):
        with pytest.raises(ValueError, match="model name"):
            serving_policy(name)
    with pytest.raises(ValueError, match="bucket name"):
        serving_policy("house-price", bucket="*")


SERVED = OBJ + "models/house-price/"
SERVING_READS = ["v1/model.joblib", "v1/manifest.json", "v1/manifest.sig", "v12/model.joblib",
                 "aliases/champion.json", "aliases/canary.json"]  # fmt: skip
NOT_SERVING_READS = ["history/2024-x.json", "index/versions/0.json", "leases/alias-x/1-t",
                     "claims/v3/t"]  # fmt: skip


def test_serving_reads_its_own_model_and_nothing_more() -> None:
    serving = policy("serving-house-price")
    for key in SERVING_READS:
        assert allows(serving, "s3:GetObject", SERVED + key), key
    for prefix in ("v1/", "aliases/"):  # KServe's storage initializer; the alias lookup
        assert allows(serving, "s3:ListBucket", BUCKET, prefix=f"models/house-price/{prefix}")
    for key in NOT_SERVING_READS:
        assert not allows(serving, "s3:GetObject", SERVED + key), key
    for other in ("models/other/", "models/house-price-b/", "models/house/", "models/"):
        assert not allows(serving, "s3:GetObject", f"{OBJ}{other}v1/model.joblib"), other
        assert not allows(serving, "s3:ListBucket", BUCKET, prefix=f"{other}v1/"), other
    for prefix in ("models/", "models/house-price/", "datasets/", "serving-logs/", ""):
        assert not allows(serving, "s3:ListBucket", BUCKET, prefix=prefix), prefix
    assert not allows(serving, "s3:GetObject", OBJ + "datasets/house-price/batch.csv")
    assert not allows(serving, "s3:GetObject", OBJ + "serving-logs/house-price/date=x/a.parquet")


def test_serving_writes_only_its_own_request_logs() -> None:
    serving = policy("serving-house-price")
    assert allows(serving, "s3:PutObject", OBJ + "serving-logs/house-price/date=2024-01-02/a.pq")
    not_its_logs = [
        "serving-logs/house-price/labels/a.parquet",  # the truth it is judged by
        "serving-logs/house-price-b/date=2024-01-02/a.parquet",
        "serving-logs/other/date=2024-01-02/a.parquet",
        "serving-logs/x.parquet",
    ]
    for key in not_its_logs:
        assert not allows(serving, "s3:PutObject", OBJ + key), key
    for key in [*SERVING_READS, *NOT_SERVING_READS]:
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            assert not allows(serving, action, SERVED + key), (action, key)
    for action in ("s3:PutBucketVersioning", "s3:GetBucketVersioning", "s3:PutBucketPolicy"):
        assert not allows(serving, action, BUCKET), action


def test_training_can_also_write_and_delete_but_not_erase_history() -> None:
    training = policy("training-readwrite")
    for key in ("models/house-price/v2/model.joblib", "models/house-price/aliases/champion.json"):
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert allows(training, action, OBJ + key), (action, key)
    assert allows(training, "s3:ListBucket", BUCKET, prefix="models/")
    assert allows(training, "s3:ListBucketVersions", BUCKET)
    # ensure_bucket (tasks/s3.py) reads versioning; the right to enable it could suspend it
    assert allows(training, "s3:GetBucketVersioning", BUCKET)
    assert not allows(training, "s3:PutBucketVersioning", BUCKET)
    assert not allows(
        training, "s3:DeleteObjectVersion", OBJ + "models/house-price/v1/model.joblib"
    )
    assert not allows(training, "s3:GetObject", "arn:aws:s3:::other-bucket/x")


# -- the work pool's base job template ----------------------------------------------------------
def job_template() -> Obj:
    return json.loads(JOB_TEMPLATE.read_text())


def test_the_job_template_is_one_prefect_accepts() -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect_kubernetes.worker import KubernetesWorker

    template = job_template()
    validate_base_job_template(template)
    WorkPoolCreate(name="mlops-kubernetes", type="kubernetes", base_job_template=template)
    default = KubernetesWorker.get_default_base_job_template()
    # every variable a deployment may set (image, cpu_request, ...) is still there
    assert set(template["variables"]["properties"]) == set(default["variables"]["properties"])
    assert {k: v for k, v in template["job_configuration"].items() if k != "job_manifest"} == {
        k: v for k, v in default["job_configuration"].items() if k != "job_manifest"
    }


def test_the_job_template_defaults_fit_the_cluster() -> None:
    defaults = {k: v.get("default") for k, v in job_template()["variables"]["properties"].items()}
    assert defaults["namespace"] == NAMESPACE
    assert defaults["service_account_name"] == "mlops-flows"
    assert defaults["image"] == "ghcr.io/selfheal-mlops/selfheal-mlops:latest"
    assert one("ServiceAccount", defaults["service_account_name"])


class _NoPrefectApi:
    """Passed as the client: the template has no block or variable references to resolve, so
    rendering must not reach a Prefect API (nor start a temporary server)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the job template needed the Prefect API ({name})")


def test_a_flow_run_job_rendered_from_the_template_is_a_valid_job() -> None:
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    values = {"image": "ghcr.io/selfheal-mlops/selfheal-mlops:abc123"}
    config = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(
            job_template(), values, client=_NoPrefectApi()
        )
    )
    job = config.job_manifest
    pod = job["spec"]["template"]["spec"]
    assert config.namespace == NAMESPACE and job["metadata"]["namespace"] == NAMESPACE
    assert pod["serviceAccountName"] == "mlops-flows"
    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/selfheal-mlops/selfheal-mlops:abc123"
    sources = {(next(iter(s)), next(iter(s.values()))["name"]) for s in c["envFrom"]}
    assert sources == {
        ("configMapRef", "mlops-flow-settings"),
        ("secretRef", "mlops-s3-training"),
        ("secretRef", "mlops-manifest-key"),
    }
    assert one("ConfigMap", "mlops-flow-settings") and one("Secret", "mlops-s3-training")
    typed = roundtrip({"apiVersion": "batch/v1", "kind": "Job", **job})
    assert typed["spec"]["template"]["spec"]["containers"][0]["envFrom"] == c["envFrom"]


# -- the image ----------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (INFRA / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_pins_its_base_and_installs_from_the_lock() -> None:
    steps = dockerfile_instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", froms[0]), froms
    copies = [arg.split() for op, arg in steps if op == "COPY"]
    assert any("uv.lock" in parts for parts in copies)
    assert all(parts[0] not in {".", "./"} for parts in copies), "COPY . would take .env along"
    runs = " ".join(arg for op, arg in steps if op == "RUN")
    assert "uv sync --locked --no-dev" in runs
    assert ("WORKDIR", "/opt/prefect") in steps
    packages = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["hatch"]
    wanted = packages["build"]["targets"]["wheel"]["packages"]
    copied = {parts[0].rstrip("/") for parts in copies}
    assert set(wanted) <= copied, set(wanted) - copied


def test_the_image_runs_as_a_non_root_user_and_holds_no_secret() -> None:
    steps = dockerfile_instructions()
    users = [arg for op, arg in steps if op == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert [op for op, _ in steps].index("USER") > max(
        i for i, (op, _) in enumerate(steps) if op in {"RUN", "COPY"}
    )
    for op, arg in steps:
        if op in {"ENV", "ARG"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", arg) or [arg.split()[0]]
            for name in names:
                assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", name.upper()), name
