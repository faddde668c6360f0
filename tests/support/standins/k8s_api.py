"""A stand-in for the Kubernetes API server's InferenceService endpoints (no cluster can run here).

It answers GET, POST (create) and PATCH (merge patch, JSON patch, server-side apply) on
`/apis/serving.kserve.io/v1beta1/namespaces/<ns>/inferenceservices[/<name>]` like the API
server: Status bodies with 404/409/400/422, `resourceVersion` bumped on every write and checked
as a precondition, `generation` bumped on spec changes only, `status` ignored on main-resource
writes (status subresource), the CRD's openAPIV3Schema enforced (`fieldValidation=Strict`
turns unknown fields into 400), field ownership for apply. It records every request.

It is NOT the API server: no auth, no admission webhooks (KServe's own validation), no
pruning of unknown fields, no watch, lists are atomic for apply. `KServeControllerModel` is our
model of how KServe/Knative report status, not KServe.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.standins.http import serve_app

PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices"
RESOURCE = "inferenceservices.serving.kserve.io"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    content_type: str
    query: dict[str, str]
    body: Any


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> JSONResponse:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        body |= {"message": self.message, "reason": self.reason, "code": self.code}
        return JSONResponse(body, status_code=self.code)


class KubeApiStandIn:
    """In-memory InferenceServices behind the API server's HTTP surface."""

    def __init__(
        self, schema: dict | None = None, controller: Callable[[dict], dict] | None = None
    ) -> None:
        self.controller = controller
        self.schemas = (schema, strict_schema(schema)) if schema else None
        self.controller_lag = 1  # reads after a write that still see the old status
        self.objects: dict[tuple[str, str], dict] = {}
        self.owners: dict[tuple[str, str], dict[tuple, set[str]]] = {}
        self.reads_since_write: dict[tuple[str, str], int] = {}
        self.requests: list[Recorded] = []
        self._version = 0
        self._lock = threading.Lock()

    # -- test-side helpers ----------------------------------------------------------------
    def set_status(self, namespace: str, name: str, status: dict) -> None:
        with self._lock:
            self.objects[(namespace, name)]["status"] = copy.deepcopy(status)

    def stored(self, namespace: str, name: str) -> dict:
        with self._lock:
            return copy.deepcopy(self.objects[(namespace, name)])

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]

    # -- HTTP -----------------------------------------------------------------------------
    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get(PREFIX + "/{name}")
        async def read(namespace: str, name: str, request: Request) -> JSONResponse:
            return await self._handle(request, lambda body: self._read(namespace, name))

        @app.post(PREFIX)
        async def create(namespace: str, request: Request) -> JSONResponse:
            return await self._handle(request, lambda body: self._create(namespace, body, request))

        @app.patch(PREFIX + "/{name}")
        async def patch(namespace: str, name: str, request: Request) -> JSONResponse:
            return await self._handle(
                request, lambda body: self._patch(namespace, name, body, request)
            )

        return app

    async def _handle(self, request: Request, action: Callable[[Any], Any]) -> JSONResponse:
        raw = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0]
        try:
            body = yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as error:
            return ApiError(400, "BadRequest", f"cannot decode body: {error}").response()
        record = Recorded(
            request.method, request.url.path, content_type, dict(request.query_params), body
        )
        self.requests.append(record)
        try:
            with self._lock:
                obj, code = action(body)
            return JSONResponse(obj, status_code=code)
        except ApiError as error:
            return error.response()

    def _read(self, namespace: str, name: str) -> tuple[dict, int]:
        key = (namespace, name)
        obj = self._existing(key)
        self.reads_since_write[key] = self.reads_since_write.get(key, 0) + 1
        if self.controller and self.reads_since_write[key] > self.controller_lag:
            obj["status"] = self.controller(copy.deepcopy(obj))
        return copy.deepcopy(obj), 200

    def _existing(self, key: tuple[str, str]) -> dict:
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{RESOURCE} "{key[1]}" not found')
        return self.objects[key]

    def _create(self, namespace: str, body: dict, request: Request) -> tuple[dict, int]:
        name = (body.get("metadata") or {}).get("name", "")
        if (namespace, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{RESOURCE} "{name}" already exists')
        manager = request.query_params.get("fieldManager", "unknown")
        return self._store(namespace, name, body, None, claim_all(body, manager), request), 201

    def _patch(self, namespace: str, name: str, body: Any, request: Request) -> tuple[dict, int]:
        key, kind = (namespace, name), request.headers.get("content-type", "").split(";")[0]
        manager = request.query_params.get("fieldManager", "unknown")
        if kind == "application/apply-patch+yaml":
            if "fieldManager" not in request.query_params:
                raise ApiError(400, "BadRequest", "fieldManager is required for apply requests")
            old = self.objects.get(key)
            force = request.query_params.get("force") in ("true", "True")
            self._precondition(old, body)
            try:
                new, owners = apply(old, body, self.owners.get(key, {}), manager, force)
            except ApplyConflict as error:
                raise ApiError(409, "Conflict", f"Apply failed with conflicts: {error}") from error
            return self._store(
                namespace, name, new, old, owners, request
            ), 201 if old is None else 200
        old = self._existing(key)
        self._precondition(old, body)
        if kind == "application/merge-patch+json":
            new = merge_patch(old, body)
        elif kind == "application/json-patch+json":
            try:
                new = json_patch(old, body)
            except PatchFailed as error:
                raise ApiError(422, "Invalid", f"json patch failed: {error}") from error
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {kind}",
            )
        owners = claim_changed(self.owners.get(key, {}), old, new, manager)
        return self._store(namespace, name, new, old, owners, request), 200

    @staticmethod
    def _precondition(old: dict | None, body: Any) -> None:
        wanted = (
            ((body or {}).get("metadata") or {}).get("resourceVersion")
            if isinstance(body, dict)
            else None
        )
        if old is not None and wanted is not None and wanted != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {RESOURCE} "{old["metadata"]["name"]}": the '
                "object has been modified; please apply your changes to the latest version "
                "and try again",
            )

    def _store(
        self, namespace: str, name: str, new: dict, old: dict | None, owners: dict, request: Request
    ) -> dict:
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        meta.update(name=name, namespace=namespace)
        old_meta = (old or {}).get("metadata", {})
        generation = old_meta.get("generation", 0)
        changed = old is None or new.get("spec") != old.get("spec")
        self._version += 1
        meta.update(
            resourceVersion=str(self._version),
            generation=generation + 1 if changed else generation,
            uid=old_meta.get("uid", f"uid-{namespace}-{name}"),
            creationTimestamp=old_meta.get(
                "creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
        )
        new.pop("status", None)
        if old and "status" in old:
            new["status"] = old["status"]
        strict = request.query_params.get("fieldValidation") == "Strict"
        self._validate(new, name, strict)
        self.objects[(namespace, name)] = new
        self.owners[(namespace, name)] = owners
        self.reads_since_write[(namespace, name)] = 0
        return copy.deepcopy(new)

    def _validate(self, obj: dict, name: str, strict: bool) -> None:
        if self.schemas is None:
            return
        schema = self.schemas[1] if strict else self.schemas[0]
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=str)
        unknown = [e for e in errors if e.validator == "additionalProperties"]
        if unknown:
            fields = "; ".join(f"{json_path(e.absolute_path)}: {e.message}" for e in unknown)
            raise ApiError(400, "BadRequest", f"strict decoding error: unknown field(s): {fields}")
        if errors:
            fields = "; ".join(f"{json_path(e.absolute_path)}: {e.message}" for e in errors)
            raise ApiError(
                422, "Invalid", f'InferenceService.serving.kserve.io "{name}" is invalid: {fields}'
            )


class KServeControllerModel:
    """Our model of KServe + Knative reporting status (NOT KServe): a new revision whenever the
    predictor template (all but canaryTrafficPercent) or the metadata changes; traffic split
    as KServe's ksvc reconciler does (latest gets canaryTrafficPercent, tag "latest"; the last
    rolled-out revision gets the rest, tag "prev"); rolled-out bookkeeping when latest gets 100%.
    With `ready=False` the newest revision never becomes ready."""

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.revisions: dict[str, list[tuple[str, str]]] = {}
        self.rolled: dict[str, tuple[str | None, str | None]] = {}

    def __call__(self, obj: dict) -> dict:
        meta, predictor = obj["metadata"], obj["spec"]["predictor"]
        name, generation = meta["name"], meta.get("generation", 1)
        template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
        key = json.dumps([template, meta.get("labels"), meta.get("annotations")], sort_keys=True)
        revisions = self.revisions.setdefault(name, [])
        if not revisions or revisions[-1][1] != key:
            revisions.append((f"{name}-predictor-{len(revisions) + 1:05d}", key))
        latest = revisions[-1][0]
        if not self.ready:
            ready_rev = revisions[-2][0] if len(revisions) > 1 else None
            component = {"latestCreatedRevision": latest, "latestReadyRevision": ready_rev}
            condition = {"type": "Ready", "status": "False", "reason": "RevisionMissing"}
            condition["message"] = f"Revision {latest} is not ready"
            return {
                "observedGeneration": generation,
                "conditions": [condition],
                "components": {"predictor": component},
            }
        return self._ready_status(obj, latest)

    def _ready_status(self, obj: dict, latest: str) -> dict:
        meta, predictor = obj["metadata"], obj["spec"]["predictor"]
        name, percent = meta["name"], predictor.get("canaryTrafficPercent")
        tags = (meta.get("annotations") or {}).get("serving.kserve.io/enable-tag-routing") == "true"
        rolled, previous = self.rolled.get(name, (None, None))
        head = {"revisionName": latest, "latestRevision": True} | (
            {"tag": "latest"} if tags else {}
        )
        if percent is None or rolled is None:
            traffic = [head | {"percent": 100}]
            if rolled != latest:
                rolled, previous = latest, rolled
        else:
            traffic = [head | {"percent": percent}]
            if percent < 100:
                traffic.append(
                    {
                        "revisionName": rolled,
                        "latestRevision": False,
                        "percent": 100 - percent,
                        "tag": "prev",
                    }
                )
        self.rolled[name] = (rolled, previous)
        component = {"latestCreatedRevision": latest, "latestReadyRevision": latest}
        component |= {"latestRolledoutRevision": rolled, "traffic": traffic}
        component |= {"previousRolledoutRevision": previous} if previous else {}
        return {
            "observedGeneration": meta.get("generation", 1),
            "url": f"http://{name}.{meta['namespace']}.example.com",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "PredictorReady", "status": "True"},
            ],
            "components": {"predictor": component},
        }


# -- the operations: patches, apply with field ownership, schema helpers ------------------------
class PatchFailed(Exception): ...


class ApplyConflict(Exception): ...


SERVER_FIELDS = {
    ("apiVersion",),
    ("kind",),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "resourceVersion"),
    ("metadata", "generation"),
    ("metadata", "uid"),
    ("metadata", "creationTimestamp"),
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def json_patch(target: dict, operations: list[dict]) -> dict:
    """RFC 6902 add/remove/replace/test (enough for the API server's common use)."""
    result = copy.deepcopy(target)
    for op in operations:
        *parents, last = _pointer(op["path"])
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.get(part)
            if node is None:
                raise PatchFailed(f"{op['path']}: parent does not exist")
        kind = op["op"]
        if kind == "test" and (node.get(last) if isinstance(node, dict) else None) != op["value"]:
            raise PatchFailed(f"test of {op['path']} failed")
        if kind in ("remove", "replace") and isinstance(node, dict) and last not in node:
            raise PatchFailed(f"{op['path']}: no such field to {kind}")
        if kind == "remove":
            node.pop(last)
        elif kind in ("add", "replace"):
            node[last] = copy.deepcopy(op["value"])
    return result


def leaves(obj: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    """Leaf paths (maps recursed, lists atomic) of the fields a manager can own."""
    if isinstance(obj, dict) and obj:
        found: dict[tuple, Any] = {}
        for key, value in obj.items():
            found |= leaves(value, (*prefix, key))
        return found
    return {} if prefix in SERVER_FIELDS or prefix[:1] == ("status",) else {prefix: obj}


def _delete(obj: dict, path: tuple) -> None:
    node = obj
    for part in path[:-1]:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(path[-1], None)


def claim_all(obj: dict, manager: str) -> dict[tuple, set[str]]:
    return {path: {manager} for path in leaves(obj)}


def claim_changed(owners: dict, old: dict, new: dict, manager: str) -> dict[tuple, set[str]]:
    """An update takes the fields it changed away from every other manager."""
    before, after = leaves(old), leaves(new)
    result = {path: set(who) for path, who in owners.items() if path in after}
    for path, value in after.items():
        if path not in before or before[path] != value:
            result[path] = {manager}
    return result


def apply(
    old: dict | None, body: dict, owners: dict, manager: str, force: bool
) -> tuple[dict, dict]:
    """Server-side apply: set what the body holds, remove what this manager alone applied
    before and left out now; values owned by others conflict unless forced."""
    current, wanted = leaves(old or {}), leaves(body)
    conflicts = [
        f'conflict with "{sorted(owners[path] - {manager})[0]}": .{".".join(path)}'
        for path, value in wanted.items()
        if owners.get(path, set()) - {manager} and current.get(path) != value
    ]
    if conflicts and not force:
        raise ApplyConflict("; ".join(conflicts))
    result = merge_patch(old or {}, body)
    new_owners = {path: set(who) for path, who in owners.items()}
    for path in wanted:
        taken = force and current.get(path) != wanted[path]
        new_owners[path] = {manager} if taken else new_owners.get(path, set()) | {manager}
    for path, who in owners.items():
        if manager in who and path not in wanted:
            new_owners[path] = who - {manager}
            if not new_owners[path]:
                del new_owners[path]
                _delete(result, path)
    return result, new_owners


def strict_schema(schema: Any) -> Any:
    """The schema with unknown fields forbidden wherever the CRD lists the known ones."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict_schema(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def json_path(path: Any) -> str:
    return ".".join(str(part) for part in path) or "<root>"


@contextmanager
def serve(standin: KubeApiStandIn) -> Iterator[str]:
    """Run the stand-in on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    with serve_app(standin.app(), "the Kubernetes API stand-in") as url:
        yield url


CRD = Path(__file__).resolve().parents[3] / "infra" / "crds" / "kserve"


@cache
def kserve_crd_schema() -> dict:
    """The v1beta1 InferenceService schema of KServe's CRD, vendored under infra/crds/kserve."""
    text = (CRD / "serving.kserve.io_inferenceservices.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 2 MB: C parser
    (v1beta1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return v1beta1["schema"]["openAPIV3Schema"]
