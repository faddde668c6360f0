"""InferenceServices on Kubernetes: the `ServingTarget` that drives KServe canaries.

Writes are JSON merge patches (`application/merge-patch+json`, what the `kubernetes` client's
`patch_namespaced_custom_object` sends), each carrying the `resourceVersion` it was decided on:
- promote is `canaryTrafficPercent: null`, which removes the field whoever set it; with
  server-side apply, omitting it removes it only if our field manager is its sole owner, so a
  percent once set by `kubectl edit` would silently survive a "promotion";
- the resourceVersion precondition makes a concurrent change fail with 409 instead of being
  overwritten (a rollback racing a promote must not be lost).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict

from tasks.decisions.rollout import ServingState
from tasks.kserve.manifests import (
    ANN_STABLE_URI,
    ANN_STABLE_VERSION,
    LABEL_VERSION,
    Obj,
    ObjectRef,
    ServedModel,
    ServingSpec,
    canary_percent_patch,
    check_sklearn_runtime,
    promote_patch,
    render_inference_service,
    rollback_patch,
    served,
    stable_patch,
    start_canary_patch,
)
from tasks.registry.versions import Manifest

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
FIELD_MANAGER = "selfheal-mlops"
T = TypeVar("T")


class KServeError(RuntimeError):
    """Something went wrong with an InferenceService; the message names it."""


class InferenceServiceNotFound(KServeError): ...


class InferenceServiceConflict(KServeError):
    """409: the object changed since it was read (or already exists)."""


class InferenceServiceInvalid(KServeError):
    """400/422: the API server refused the object."""


class KubernetesUnreachable(KServeError): ...


class NotReadyInTime(KServeError): ...


class NoCanaryInProgress(KServeError): ...


class CanaryInProgress(KServeError): ...


class RuntimeMismatch(KServeError):
    """The sklearn runtime cannot load this model's scikit-learn version."""


# -- pure reading of an InferenceService -------------------------------------------------------
class DesiredSplit(BaseModel):
    """What the spec asks for: which version is stable, which (if any) is the canary."""

    model_config = ConfigDict(frozen=True)
    stable: ServedModel
    canary: ServedModel | None
    percent: int | None


class Readiness(BaseModel):
    model_config = ConfigDict(frozen=True)
    ready: bool
    reason: str


def desired_split(obj: Obj) -> DesiredSplit:
    """Which version is stable and which (if any) is the canary, from our labels/annotations."""
    meta, predictor = obj.get("metadata", {}), obj.get("spec", {}).get("predictor", {})
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    try:
        current = ServedModel(
            version=int(labels[LABEL_VERSION]), storage_uri=predictor["model"]["storageUri"]
        )
        percent = predictor.get("canaryTrafficPercent")
        if percent is None or ANN_STABLE_VERSION not in notes:
            return DesiredSplit(stable=current, canary=None, percent=percent)
        stable = ServedModel(
            version=int(notes[ANN_STABLE_VERSION]), storage_uri=notes[ANN_STABLE_URI]
        )
    except (KeyError, ValueError, TypeError) as error:
        raise KServeError(
            f"InferenceService {meta.get('namespace')}/{meta.get('name')} is not one this "
            f"project manages (missing or bad {error}): expected the {LABEL_VERSION} label, "
            "spec.predictor.model.storageUri and, during a canary, the stable-* annotations"
        ) from error
    if stable.version == current.version:  # rolled back: pinned to the stable version
        return DesiredSplit(stable=current, canary=None, percent=percent)
    return DesiredSplit(stable=stable, canary=current, percent=percent)


def readiness(obj: Obj) -> Readiness:
    """Ready only when the controller has seen this generation, says Ready, and the newest
    revision is the ready one (a stale Ready from before the last patch does not count)."""
    generation = obj.get("metadata", {}).get("generation")
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Readiness(ready=False, reason=f"generation {generation} not yet observed")
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    if ready is None:
        return Readiness(ready=False, reason="no Ready condition yet")
    if ready.get("status") != "True":
        why = f"{ready.get('reason', '')} {ready.get('message', '')}".strip()
        return Readiness(ready=False, reason=f"Ready={ready.get('status')}: {why}")
    predictor = status.get("components", {}).get("predictor", {})
    created, latest = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    if created and created != latest:
        return Readiness(ready=False, reason=f"revision {created} created, {latest} is ready")
    return Readiness(ready=True, reason=f"Ready at generation {generation}")


def serving_state(obj: Obj, model_name: str) -> ServingState:
    """Spec (which versions) plus status.components.predictor (revisions, traffic)."""
    split = desired_split(obj)
    predictor = (obj.get("status") or {}).get("components", {}).get("predictor", {})
    traffic = predictor.get("traffic", [])
    to_latest = [t.get("percent", 0) for t in traffic if t.get("latestRevision")]
    split_seen = len(traffic) > 1 and to_latest
    percent = (to_latest[0] if split_seen else split.percent or 0) if split.canary else 0
    keys = ("latestReadyRevision", "latestCreatedRevision", "latestRolledoutRevision")
    detail: dict[str, object] = {key: predictor.get(key) for key in keys}
    detail |= {
        "previousRolledoutRevision": predictor.get("previousRolledoutRevision"),
        "traffic": traffic,
        "desired_canary_percent": split.percent,
        "storage_uri": (split.canary or split.stable).storage_uri,
        "url": (obj.get("status") or {}).get("url"),
        "reason": readiness(obj).reason,
    }
    return ServingState(
        model_name=model_name,
        stable_version=split.stable.version,
        canary_version=split.canary.version if split.canary else None,
        canary_percent=percent,
        ready=readiness(obj).ready,
        detail=detail,
    )


def api_error(error: ApiException, ref: ObjectRef, action: str) -> KServeError:
    try:
        message = json.loads(error.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(error.body or "")
    text = f"{action} InferenceService {ref.namespace}/{ref.name}: HTTP {error.status} {message}"
    kinds = {404: InferenceServiceNotFound, 409: InferenceServiceConflict}
    kinds |= {400: InferenceServiceInvalid, 422: InferenceServiceInvalid}
    return kinds.get(error.status or 0, KServeError)(text.strip())


# -- the target --------------------------------------------------------------------------------
class KubernetesServingTarget:
    """`ServingTarget` for one InferenceService, through the CustomObjectsApi."""

    def __init__(
        self,
        api: CustomObjectsApi,
        namespace: str,
        name: str,
        spec: ServingSpec,
        *,
        timeout_s: float = 600.0,
        poll_s: float = 2.0,
    ) -> None:
        self.api, self.spec = api, spec
        self.ref = ObjectRef(namespace=namespace, name=name)
        self.timeout_s, self.poll_s = timeout_s, poll_s

    def deploy_stable(self, manifest: Manifest) -> ServingState:
        self._require_runtime(manifest)
        body = render_inference_service(self.ref, self.spec, manifest)
        current = self._get(missing_ok=True)
        if current is None:
            self._call("create", self.api.create_namespaced_custom_object, body=body)
        else:
            self._patch(stable_patch(body), current)
        return self._wait_ready()

    def start_canary(self, manifest: Manifest, percent: int) -> ServingState:
        self._require_runtime(manifest)
        current = self._get()
        split = desired_split(current)
        if split.canary is not None:
            raise CanaryInProgress(
                f"InferenceService {self.ref.name}: canary v{split.canary.version} is still "
                f"running; promote or roll it back before starting v{manifest.version}"
            )
        self._patch(start_canary_patch(split.stable, served(self.spec, manifest), percent), current)
        return self._wait_ready()

    def set_canary_percent(self, percent: int) -> ServingState:
        current = self._require_canary("change the canary percent of")
        self._patch(canary_percent_patch(percent), current)
        return self._wait_ready()

    def promote_canary(self) -> ServingState:
        current = self._require_canary("promote the canary of")
        self._patch(promote_patch(), current)
        return self._wait_ready()

    def rollback_canary(self) -> ServingState:
        """Idempotent: with no canary running there is nothing to roll back."""
        current = self._get()
        split = desired_split(current)
        if split.canary is None:
            return serving_state(current, self.spec.model_name)
        self._patch(rollback_patch(split.stable), current)
        return self._wait_ready()

    def state(self) -> ServingState:
        return serving_state(self._get(), self.spec.model_name)

    # -- helpers -------------------------------------------------------------------------------
    def _require_runtime(self, manifest: Manifest) -> None:
        served(self.spec, manifest)
        verdict = check_sklearn_runtime(
            manifest.library_versions, self.spec.runtime_sklearn_version
        )
        if not verdict.compatible:
            raise RuntimeMismatch(
                f"refusing to serve {manifest.name} v{manifest.version} on InferenceService "
                f"{self.ref.namespace}/{self.ref.name}: {verdict.reason}"
            )

    def _require_canary(self, action: str) -> Obj:
        current = self._get()
        if desired_split(current).canary is None:
            raise NoCanaryInProgress(
                f"cannot {action} InferenceService {self.ref.namespace}/{self.ref.name}: "
                "no canary is in progress"
            )
        return current

    def _wait_ready(self) -> ServingState:
        deadline = time.monotonic() + self.timeout_s
        while True:
            current = self._get()
            verdict = readiness(current)
            if verdict.ready:
                return serving_state(current, self.spec.model_name)
            if time.monotonic() >= deadline:
                raise NotReadyInTime(
                    f"InferenceService {self.ref.namespace}/{self.ref.name} not Ready within "
                    f"{self.timeout_s:g}s: {verdict.reason}"
                )
            time.sleep(self.poll_s)

    def _get(self, missing_ok: bool = False) -> Any:
        try:
            return self._call("read", self.api.get_namespaced_custom_object, name=self.ref.name)
        except InferenceServiceNotFound:
            if missing_ok:
                return None
            raise

    def _patch(self, patch: Obj, current: Obj) -> Obj:
        """Merge patch, valid only against the resourceVersion the decision was made on."""
        version = current["metadata"]["resourceVersion"]
        body = patch | {"metadata": patch.get("metadata", {}) | {"resourceVersion": version}}
        return self._call(
            "patch", self.api.patch_namespaced_custom_object, name=self.ref.name, body=body
        )

    def _call(self, action: str, method: Callable[..., T], **kwargs: Any) -> T:
        if action != "read":
            kwargs |= {"field_manager": FIELD_MANAGER, "field_validation": "Strict"}
        where = {"group": GROUP, "version": VERSION, "namespace": self.ref.namespace}
        try:
            return method(**where, plural=PLURAL, _request_timeout=30, **kwargs)
        except ApiException as error:
            raise api_error(error, self.ref, action) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise KubernetesUnreachable(
                f"cannot {action} InferenceService {self.ref.namespace}/{self.ref.name}: "
                f"Kubernetes API unreachable ({type(error).__name__}: {error})"
            ) from error


def connect(context: str | None = None) -> CustomObjectsApi:
    """A CustomObjectsApi from the in-cluster service account, else the kubeconfig."""
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(context=context)
    return CustomObjectsApi()
