"""`LocalServingTarget`: the ServingTarget protocol for the local model server, over its admin API.

Every change is two HTTP calls to `/mlops/v1/routing` on 127.0.0.1: a read that checks the server
serves this model (a version number means nothing on another model's server: v3 of "diabetes"
sent to the house-price server would switch it to house-price v3), then the change; the server
loads and probes a new version before switching, so a refused version never gets traffic and
stable keeps serving.
"""

from __future__ import annotations

import httpx

from tasks.decisions.rollout import ServingState
from tasks.decisions.routing import Routing
from tasks.registry.versions import Manifest


class ServingTargetError(RuntimeError):
    """The model server refused the change or could not be reached; the message says which."""


class LocalServingTarget:
    """Drives the split of a model server started by infra/model_server.py."""

    def __init__(self, url: str, model_name: str, timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.timeout_s = timeout_s

    # -- the protocol ------------------------------------------------------------------------
    def deploy_stable(self, manifest: Manifest) -> ServingState:
        self._check(manifest)
        self._served()  # refused here if the server serves another model
        return self._put(Routing(stable_version=manifest.version))

    def start_canary(self, manifest: Manifest, percent: int) -> ServingState:
        self._check(manifest)
        stable = self._routing().stable_version
        if stable is None:
            raise ServingTargetError("no stable version is served: deploy_stable first")
        return self._put(
            Routing(stable_version=stable, canary_version=manifest.version, canary_percent=percent)
        )

    def set_canary_percent(self, percent: int) -> ServingState:
        current = self._routing()
        if current.canary_version is None:
            raise ServingTargetError("no canary is loaded: start_canary first")
        return self._put(Routing(**{**current.model_dump(), "canary_percent": percent}))

    def promote_canary(self) -> ServingState:
        current = self._routing()
        if current.canary_version is None:
            raise ServingTargetError("no canary to promote")
        return self._put(Routing(stable_version=current.canary_version))

    def rollback_canary(self) -> ServingState:
        return self._put(Routing(stable_version=self._routing().stable_version))

    def state(self) -> ServingState:
        return _serving_state(self._served())

    # -- helpers -----------------------------------------------------------------------------
    def _check(self, manifest: Manifest) -> None:
        if manifest.name != self.model_name:
            raise ServingTargetError(
                f"manifest is for {manifest.name!r}; this server serves {self.model_name!r}"
            )

    def _served(self) -> dict:
        """The server's routing state, once it is known to serve this model."""
        payload = self._request("GET", "/mlops/v1/routing")
        if payload.get("model_name") != self.model_name:
            raise ServingTargetError(
                f"the model server at {self.url} serves {payload.get('model_name')!r}, not"
                f" {self.model_name!r}: nothing changed. Start one for it (`mlops serve --name"
                f" {self.model_name} --port N`) and set MLOPS_SERVING_URL to its address"
            )
        return payload

    def _routing(self) -> Routing:
        return Routing.model_validate(self._served()["routing"])

    def _put(self, routing: Routing) -> ServingState:
        return _serving_state(self._request("PUT", "/mlops/v1/routing", routing.model_dump()))

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = httpx.request(method, self.url + path, json=body, timeout=self.timeout_s)
        except httpx.HTTPError as error:
            raise ServingTargetError(f"model server {self.url} unreachable: {error}") from error
        if response.status_code >= 400:
            try:
                detail = response.json()
            except ValueError:
                detail = response.text[:500]
            raise ServingTargetError(
                f"{method} {path} answered {response.status_code}: "
                f"{detail.get('error', detail) if isinstance(detail, dict) else detail}"
            )
        return response.json()


def _serving_state(payload: dict) -> ServingState:
    routing = Routing.model_validate(payload["routing"])
    return ServingState(
        model_name=payload["model_name"],
        stable_version=routing.stable_version,
        canary_version=routing.canary_version,
        canary_percent=round(routing.canary_percent),
        ready=payload["ready"],
        detail={"loaded": payload.get("loaded", {}), "failed": payload.get("failed", {})},
    )
