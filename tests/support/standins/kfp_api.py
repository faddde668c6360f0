"""A stand-in for the Kubeflow Pipelines v2beta1 REST API (no KFP backend can run on this machine).

It answers exactly what `kfp.Client` 2.17 calls for `create_run_from_pipeline_package` and
`get_run` (read from its source): `GET /apis/v2beta1/healthz`, `GET /apis/v2beta1/experiments`
(the `display_name EQUALS` filter `get_experiment` sends), `POST /apis/v2beta1/experiments`,
`POST /apis/v2beta1/runs` and `GET /apis/v2beta1/runs/{run_id}`. Submitted pipeline specs are
parsed with KFP's own protobuf schema (`PipelineSpec`, `PlatformSpec`), runtime parameters are
checked against the spec's root inputs, each task's Kubernetes configuration is parsed with
kfp-kubernetes' `KubernetesExecutorConfig` (strictly, as the backend's driver does), errors come back as google.rpc.Status bodies with the
HTTP code grpc-gateway would use. A run walks through a scripted list of states, one per read.
Every request is recorded; `fail` injects an HTTP error for one endpoint.

It does NOT prove: that a real KFP backend accepts and schedules the spec (driver, launcher,
Argo workflow compilation), that the pods get the ConfigMap and Secrets (or that those exist in
the run's namespace), that the image can be pulled or imports the project,
multi-user namespaces/auth (Istio, Dex, tokens), pagination, or run-state timing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from tests.support.standins.http import serve_app

API = "/apis/v2beta1"
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class StandInError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def response(self) -> JSONResponse:
        code = GRPC_CODES.get(self.status, 2)
        body = {"error": self.message, "code": code, "message": self.message, "details": []}
        return JSONResponse(body, status_code=self.status)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class KfpApiStandIn:
    """In-memory experiments and runs behind the KFP v2beta1 HTTP surface."""

    def __init__(self, states: Sequence[str] = ("PENDING", "RUNNING", "SUCCEEDED")) -> None:
        self.states = list(states)  # one per read of a run; the last one repeats forever
        self.requests: list[Recorded] = []
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.reads: dict[str, int] = {}
        self.faults: dict[tuple[str, str], StandInError] = {}

    def fail(self, method: str, path: str, status: int, message: str) -> None:
        """Answer every `method path` request with this HTTP error from now on."""
        self.faults[(method, path)] = StandInError(status, message)

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [item for item in self.requests if (item.method, item.path) == (method, path)]

    async def _enter(self, request: Request) -> Any:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        path = request.url.path
        self.requests.append(Recorded(request.method, path, dict(request.query_params), body))
        if fault := self.faults.get((request.method, path)):
            raise fault
        return body

    def _list_experiments(self, query: dict[str, str]) -> dict[str, Any]:
        found = list(self.experiments.values())
        for predicate in json.loads(query.get("filter") or "{}").get("predicates", []):
            if (predicate.get("key"), predicate.get("operation")) != ("display_name", 1):
                raise StandInError(400, f"filter not supported by the stand-in: {predicate}")
            found = [item for item in found if item["display_name"] == predicate["stringValue"]]
        return {"experiments": found, "total_size": len(found)} if found else {"total_size": 0}

    def _create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = (body or {}).get("display_name")
        if not name:
            raise StandInError(400, "experiment display_name is required")
        if any(item["display_name"] == name for item in self.experiments.values()):
            raise StandInError(409, f"experiment {name!r} already exists")
        experiment = {"experiment_id": str(uuid.uuid4()), "display_name": name}
        experiment |= {"created_at": _now(), "storage_state": "AVAILABLE"}
        experiment |= {"namespace": body.get("namespace") or ""}
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def _create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        body = body or {}
        if body.get("experiment_id") not in self.experiments:
            raise StandInError(404, f"experiment {body.get('experiment_id')!r} not found")
        if not body.get("display_name"):
            raise StandInError(400, "run display_name is required")
        spec = parse_pipeline(body.get("pipeline_spec"))
        check_parameters(spec, (body.get("runtime_config") or {}).get("parameters") or {})
        run = {k: body[k] for k in ("experiment_id", "display_name", "runtime_config") if k in body}
        run |= {"run_id": str(uuid.uuid4()), "state": "PENDING", "created_at": _now()}
        run |= {"storage_state": "AVAILABLE"}
        self.runs[run["run_id"]] = run
        return run

    def _read_run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.runs:
            raise StandInError(404, f"run {run_id} not found")
        count = self.reads.get(run_id, 0)
        self.reads[run_id] = count + 1
        self.runs[run_id]["state"] = self.states[min(count, len(self.states) - 1)]
        return self.runs[run_id]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.exception_handler(StandInError)
        async def _error(request: Request, error: StandInError) -> JSONResponse:
            return error.response()

        @app.get(f"{API}/healthz")
        async def healthz(request: Request) -> dict:
            await self._enter(request)
            return {"multi_user": False, "pipeline_store": "database"}

        @app.get(f"{API}/experiments")
        async def list_experiments(request: Request) -> dict:
            await self._enter(request)
            return self._list_experiments(dict(request.query_params))

        @app.post(f"{API}/experiments")
        async def create_experiment(request: Request) -> dict:
            return self._create_experiment(await self._enter(request))

        @app.post(f"{API}/runs")
        async def create_run(request: Request) -> dict:
            return self._create_run(await self._enter(request))

        @app.get(API + "/runs/{run_id}")
        async def get_run(run_id: str, request: Request) -> dict:
            await self._enter(request)
            return self._read_run(run_id)

        return app


def parse_pipeline(document: Any) -> pipeline_spec_pb2.PipelineSpec:
    """Parse a submitted spec as the API server does: bare, or {pipeline_spec, platform_spec}."""
    if not isinstance(document, dict):
        raise StandInError(400, "pipeline_spec is required (no pipeline version reference support)")
    pipeline = document.get("pipeline_spec", document) if "platform_spec" in document else document
    try:
        spec = json_format.ParseDict(pipeline, pipeline_spec_pb2.PipelineSpec())
        if "platform_spec" in document:
            platform = document["platform_spec"]
            json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
            kubernetes = platform.get("platforms", {}).get("kubernetes", {})
            for config in kubernetes.get("deploymentSpec", {}).get("executors", {}).values():
                executor = kubernetes_executor_config_pb2.KubernetesExecutorConfig()
                json_format.ParseDict(config, executor)
    except json_format.ParseError as error:
        raise StandInError(400, f"invalid pipeline spec: {error}") from error
    return spec


def check_parameters(spec: pipeline_spec_pb2.PipelineSpec, parameters: dict[str, Any]) -> None:
    declared = spec.root.input_definitions.parameters
    unknown = sorted(set(parameters) - set(declared))
    missing = sorted(
        name for name, item in declared.items() if not item.is_optional and name not in parameters
    )
    if unknown or missing:
        raise StandInError(400, f"runtime parameters: unknown {unknown}, missing {missing}")


@contextmanager
def serve(standin: KfpApiStandIn) -> Iterator[str]:
    """Run the stand-in on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    with serve_app(standin.app(), "the KFP API stand-in") as url:
        yield url
