"""The one interface the deploy, canary and rollback flows drive, whatever serves the model.

`tasks/modelserver/model.py` implements it for the local KServe model server; `tasks/kserve/target.py` for
InferenceServices on Kubernetes. The flows pick one by `Settings.serving_target`.
"""

from __future__ import annotations

import json
from typing import Protocol

from tasks.decisions.rollout import ServingState
from tasks.registry.versions import Manifest
from tasks.settings import Settings


class ServingTarget(Protocol):
    def deploy_stable(self, manifest: Manifest) -> ServingState:
        """Serve this verified version to 100% of traffic (first deployment, or promotion)."""
        ...

    def start_canary(self, manifest: Manifest, percent: int) -> ServingState:
        """Send `percent`% of traffic to this verified version; the stable version keeps the rest."""
        ...

    def set_canary_percent(self, percent: int) -> ServingState:
        """Change the canary's share of traffic without a restart."""
        ...

    def promote_canary(self) -> ServingState:
        """The canary becomes the stable version with 100% of traffic."""
        ...

    def rollback_canary(self) -> ServingState:
        """The canary gets 0% at once; the stable version serves everything."""
        ...

    def state(self) -> ServingState:
        """The current split, as the serving side reports it."""
        ...


def open_target(settings: Settings) -> ServingTarget:
    """The serving target named by `settings.serving_target`, ready to be driven."""
    if settings.serving_target == "local":
        from tasks.modelserver.client import LocalServingTarget

        return LocalServingTarget(local_server_url(settings), settings.model_name)
    import sklearn

    from tasks.images import IMAGE_VARIABLE
    from tasks.kserve.manifests import ManifestError, ServingSpec
    from tasks.kserve.target import KubernetesServingTarget, connect

    if settings.image is None:
        raise ManifestError(
            f"{IMAGE_VARIABLE} is not set: the InferenceService's predictor runs the project's "
            "image, pinned to the tag or digest CI built (deployments.setup --image sets it)"
        )
    # The predictor runs the image these flows run in: the same locked scikit-learn.
    spec = ServingSpec(
        model_name=settings.model_name,
        image=settings.image,
        runtime_sklearn_version=sklearn.__version__,
    )
    api = connect(settings.kube_context)
    return KubernetesServingTarget(api, settings.kserve_namespace, settings.inference_service, spec)


def local_server_url(settings: Settings) -> str:
    """The model's own local server (its record in `serving_records`, written by `mlops serve`),
    else `serving_url`: one stack serves several models, each from a server of its own, and a
    flow run of any of them (a worker's, triggered by an event) finds the right one."""
    if settings.serving_records is not None:
        record = settings.serving_records / f"{settings.model_name}.json"
        try:
            return str(json.loads(record.read_text())["url"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"the serving record {record} is unreadable: {error}") from error
    return settings.serving_url
