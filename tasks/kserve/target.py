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

import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from tasks.decisions.rollout import ServingState
from tasks.decisions.runtime import check_sklearn_runtime
from tasks.kserve.errors import (
    AnotherModelsService,
    CanaryInProgress,
    InferenceServiceNotFound,
    KubernetesUnreachable,
    NoCanaryInProgress,
    NotReadyInTime,
    RuntimeMismatch,
    api_error,
)
from tasks.kserve.manifests import (
    LABEL_MODEL,
    Obj,
    ObjectRef,
    ServingSpec,
    canary_percent_patch,
    promote_patch,
    render_inference_service,
    rollback_patch,
    served,
    stable_patch,
    start_canary_patch,
)
from tasks.kserve.status import desired_split, readiness, serving_state
from tasks.registry.versions import Manifest

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
FIELD_MANAGER = "selfheal-mlops"
T = TypeVar("T")


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
        canary = served(self.spec, manifest)
        self._patch(start_canary_patch(self.spec, split.stable, canary, percent), current)
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
        self._patch(rollback_patch(self.spec, split.stable), current)
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
        """The InferenceService, once it is known to serve this model (every change reads it
        first, so none lands on another model's service)."""
        try:
            current = self._call("read", self.api.get_namespaced_custom_object, name=self.ref.name)
        except InferenceServiceNotFound:
            if missing_ok:
                return None
            raise
        model = current.get("metadata", {}).get("labels", {}).get(LABEL_MODEL)
        if model != self.spec.model_name:
            raise AnotherModelsService(
                f"InferenceService {self.ref.namespace}/{self.ref.name} serves {model!r}, not"
                f" {self.spec.model_name!r}: nothing changed (is MLOPS_KSERVE_SERVICE set for"
                " every model? unset, each model's service is named after it)"
            )
        return current

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
    import os

    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        # KUBECONFIG read now: the client reads it once, when its module is first imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), context=context)
    return CustomObjectsApi()
