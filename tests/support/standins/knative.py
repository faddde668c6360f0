"""A stand-in for Knative's traffic split in front of an InferenceService's revisions.

No cluster can run here, so this stands at the network edge only: it reads the traffic split the
Kubernetes API stand-in's controller model reports (`status.components.predictor.traffic`), maps
each revision to the predictor process started for it (by the `--storage-uri` its container
runs), and forwards every request to one revision with that probability, as Knative's
activator/queue-proxy would. The predictors behind it are the project's real model server
processes, each pinned to one version, writing real serving logs to S3.

What this does NOT prove: Knative's routing, scaling, or revision garbage collection.
"""

from __future__ import annotations

import json
import random
import threading

import httpx
from fastapi import FastAPI, Request, Response

from tasks.kserve.manifests import served_from_container
from tests.support.standins.k8s_api import KServeControllerModel, KubeApiStandIn


class KnativeRouter:
    """Route to the predictor of each revision by the split the controller model reports."""

    def __init__(
        self,
        api: KubeApiStandIn,
        controller: KServeControllerModel,
        namespace: str,
        name: str,
        predictors: dict[str, str],  # storage URI -> base URL of the predictor process serving it
        seed: int = 0,
    ) -> None:
        self.api, self.controller, self.namespace, self.name = api, controller, namespace, name
        self.predictors = predictors
        self.routed: dict[str, int] = {}  # storage URI -> requests forwarded
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30)

    def _revision_uri(self, revision: str) -> str:
        for name, key in self.controller.revisions[self.name]:
            if name == revision:
                template = json.loads(key)[0]
                return served_from_container(template["containers"][0])
        raise LookupError(f"no revision {revision!r} of {self.name}")

    def choose(self) -> str:
        """The storage URI of the revision this request goes to."""
        status = self.api.stored(self.namespace, self.name).get("status") or {}
        traffic = status.get("components", {}).get("predictor", {}).get("traffic", [])
        live = [(t["revisionName"], t.get("percent", 0)) for t in traffic if t.get("percent")]
        with self._lock:
            draw, total = self._random.uniform(0, 100), 0.0
            for revision, percent in live:
                total += percent
                if draw < total:
                    return self._revision_uri(revision)
            return self._revision_uri(live[-1][0])

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def forward(path: str, request: Request) -> Response:
            uri = self.choose()
            with self._lock:
                self.routed[uri] = self.routed.get(uri, 0) + 1
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            answer = self._client.post(
                f"{self.predictors[uri]}/{path}", content=await request.body(), headers=headers
            )
            keep = {k: v for k, v in answer.headers.items() if k.lower() in FORWARDED}
            return Response(answer.content, status_code=answer.status_code, headers=keep)

        return app


FORWARDED = {"content-type", "x-model-version", "x-request-id"}
