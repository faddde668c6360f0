"""Everything that can go wrong with an InferenceService, as one small family of errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client.exceptions import ApiException

    from tasks.kserve.manifests import ObjectRef


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


class AnotherModelsService(KServeError):
    """The InferenceService serves another model: its version numbers are not this model's."""


class RuntimeMismatch(KServeError):
    """The sklearn runtime cannot load this model's scikit-learn version."""


def api_error(error: ApiException, ref: ObjectRef, action: str) -> KServeError:
    try:
        message = json.loads(error.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(error.body or "")
    text = f"{action} InferenceService {ref.namespace}/{ref.name}: HTTP {error.status} {message}"
    kinds = {404: InferenceServiceNotFound, 409: InferenceServiceConflict}
    kinds |= {400: InferenceServiceInvalid, 422: InferenceServiceInvalid}
    return kinds.get(error.status or 0, KServeError)(text.strip())
