"""The served model: a kserve.Model holding a stable and a canary version from the registry.

Each request goes to one version by the configured weight and is answered with the version that
served it (`x-model-version` header and in the body). A canary that raises or answers NaN/inf in
live traffic is taken out at once: the request is answered by stable and the canary gets 0%.
`LocalServingTarget` (re-exported here) lives in tasks/modelserver/client.py, the app in
tasks/modelserver/app.py, what each request logs in tasks/modelserver/request_log.py.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass

from kserve import Model
from kserve.errors import InferenceError, InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferRequest, InferResponse
from pydantic import BaseModel, ConfigDict

from tasks.data.contract import DataContract
from tasks.decisions.routing import (
    Routing,
    ServeOptions,
    choose_version,
    judge_routing_change,
    without_canary_traffic,
)
from tasks.modelserver.answers import Answer, answer_rows, predict_rows
from tasks.modelserver.client import LocalServingTarget
from tasks.modelserver.inputs import (
    BadRequest,
    check_v2_datatypes,
    feature_specs,
    probe_rows,
    rows_from_v1,
    rows_from_v2,
)
from tasks.modelserver.log_writer import ServingLogWriter
from tasks.modelserver.request_log import ServedRequest, request_id, writer_stats
from tasks.modelserver.stats import VersionStats
from tasks.registry.versions import Manifest, ModelRegistry

LOG = logging.getLogger(__name__)

__all__ = ["LocalServingTarget", "RoutedModel", "RoutingRefused", "RoutingState", "predict_rows"]


class RoutingRefused(RuntimeError):
    """A routing change was refused; the split in force is unchanged. `reasons` say why."""

    def __init__(self, reasons: tuple[str, ...]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class RoutingState(BaseModel):
    """What `GET /mlops/v1/routing` answers."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    routing: Routing
    ready: bool
    loaded: dict[int, str]  # version -> sha256 of the file that was verified and loaded
    failed: dict[int, str]  # versions taken out of traffic live, with the reason


@dataclass(frozen=True)
class LoadedVersion:
    manifest: Manifest
    model: object
    classes: tuple[str, ...] | None = None  # a classifier's, checked against the contract's


@dataclass(frozen=True)
class _Served:
    """One immutable snapshot; a request reads it once, so a change never splits a request."""

    routing: Routing
    versions: dict[int, LoadedVersion]


class RoutedModel(Model):
    """Stable + canary versions of one registered model behind one KServe model name."""

    def __init__(
        self,
        registry: ModelRegistry,
        contract: DataContract,
        options: ServeOptions,
        log_writer: ServingLogWriter | None = None,
    ) -> None:
        super().__init__(registry.name, return_response_headers=True)
        self.registry, self.contract, self.options, self.log_writer = (
            registry,
            contract,
            options,
            log_writer,
        )
        self._served = _Served(Routing(), {})
        self._stats: dict[int, VersionStats] = {}
        self._failed: dict[int, str] = {}
        self._admin_lock = threading.Lock()  # one routing change at a time
        self._swap_lock = threading.Lock()  # held only to swap the snapshot
        self._random = random.Random(options.seed)
        self._features: list[str] | None = None
        self._specs = ()

    # -- lifecycle and routing ---------------------------------------------------------------
    def load(self) -> bool:
        if not self._served.versions and self.options.routing.versions:
            self.apply_routing(self.options.routing)
        self.ready = self._served.routing.stable_version is not None
        return self.ready

    def apply_routing(self, requested: Routing) -> RoutingState:
        """Load and probe any new version first, then switch in one step; refuse on any failure."""
        with self._admin_lock:
            current = self._served
            loaded, errors = {}, {}
            for version in requested.versions:
                if version in current.versions:
                    loaded[version] = current.versions[version]
                    continue
                try:
                    loaded[version] = self._load_version(version)
                except Exception as error:  # any failure to load means: no traffic, ever
                    errors[version] = f"{type(error).__name__}: {error}"
            with self._swap_lock:  # judged under the lock: a canary may fail live meanwhile
                verdict = judge_routing_change(requested, self._failed, errors)
                if not verdict.ok:
                    raise RoutingRefused(verdict.reasons)
                self._served = _Served(requested, loaded)
                for version in requested.versions:
                    self._stats.setdefault(
                        version,
                        VersionStats(version, self.options.reservoir_size, self.options.seed),
                    )
            self.ready = requested.stable_version is not None
            return self.state()

    def _load_version(self, version: int) -> LoadedVersion:
        manifest, model = self.registry.load(version)  # raises IntegrityError on a sha256 mismatch
        try:
            classes = self._classes_of(manifest)
            specs = feature_specs(manifest.features, self.contract)
        except ValueError as error:
            if not self._adopt_stored_contract():
                raise ValueError(f"{error}{self._contract_hint(manifest)}") from error
            classes = self._classes_of(manifest)
            specs = feature_specs(manifest.features, self.contract)
        if self._features is not None and manifest.features != self._features:
            raise ValueError(
                f"features {manifest.features} differ from the served {self._features}; "
                "serve it from a new server"
            )
        probe = probe_rows(specs)
        reason = answer_rows(model, probe, manifest.features, classes).problem(len(probe))
        if reason:
            raise ValueError(f"probe batch: {reason}")
        self._features, self._specs = list(manifest.features), specs
        if self.log_writer is not None:
            self.log_writer.features = self._features
        return LoadedVersion(manifest, model, classes)

    def _adopt_stored_contract(self) -> bool:
        """While nothing is served, take the model's stored contract if it differs from the one
        read at start (a server started before `mlops init --register`); whether it did."""
        if self._served.versions or self._features is not None:
            return False  # requests are answered under the contract in force: restart instead
        from tasks.registry.configs import read_config

        stored = read_config(self.registry)
        if stored is None or stored.contract.digest() == self.contract.digest():
            return False
        LOG.warning("%s: serving under its stored contract %r, registered after this server"
                    " started (it read %r)", self.name, stored.contract.name, self.contract.name)  # fmt: skip
        self.contract = stored.contract
        return True

    def _contract_hint(self, manifest: Manifest) -> str:
        """Why a version may not fit: the server read its contract once, when it started; one
        started before the model's configuration was registered holds the default contract."""
        trained_on = manifest.contract.get("name")
        if trained_on in (None, self.contract.name):
            return ""
        return (
            f" (v{manifest.version} was trained under contract {trained_on!r}; this server read"
            f" {self.contract.name!r} when it started: restart it once {self.name}'s"
            " configuration is registered)"
        )

    def _classes_of(self, manifest: Manifest) -> tuple[str, ...] | None:
        """A classifier's classes, which must be the served contract's (every version answers
        probabilities over the same classes, in the same order); None for a regressor."""
        contract_classes = self.contract.classes
        if manifest.task != self.contract.task:
            raise ValueError(
                f"v{manifest.version} is a {manifest.task} model, but {self.name} serves"
                f" {self.contract.task} (its contract's target {self.contract.target.name!r})"
            )
        if contract_classes is None:
            return None
        if tuple(manifest.classes or ()) != tuple(contract_classes):
            raise ValueError(
                f"v{manifest.version} predicts classes {manifest.classes}, not the contract's"
                f" {list(contract_classes)}"
            )
        return tuple(contract_classes)

    def _take_out_canary(self, version: int, reason: str) -> None:
        with self._swap_lock:
            self._failed[version] = reason
            taken_out = self._served.routing.canary_version == version
            if taken_out:
                self._served = _Served(
                    without_canary_traffic(self._served.routing), self._served.versions
                )
        if taken_out:
            announce_canary_failure(self.name, version, reason)

    def state(self) -> RoutingState:
        served = self._served
        return RoutingState(
            model_name=self.name,
            routing=served.routing,
            ready=served.routing.stable_version is not None,
            loaded={v: loaded.manifest.sha256 for v, loaded in served.versions.items()},
            failed=dict(self._failed),
        )

    def stats(self) -> dict[str, object]:
        return {
            "model_name": self.name,
            "routing": self._served.routing.model_dump(),
            "versions": {str(v): s.snapshot().model_dump() for v, s in sorted(self._stats.items())},
            "logs": writer_stats(self.log_writer),
        }

    # -- requests ----------------------------------------------------------------------------
    def predict(self, payload, headers=None, response_headers=None):
        started = time.perf_counter()
        served = self._served
        version = choose_version(served.routing, self._random.random())
        if version is None:
            raise ModelNotReady(self.name, "no stable version is being served")
        rows = self._rows(payload)
        request = ServedRequest(request_id(payload, headers), rows, self.log_writer, started)
        version, answer = self._answer(served, version, request)
        latency_ms = request.elapsed_ms()
        self._stats[version].record(latency_ms, answer.values)
        request.answered(version, answer, latency_ms)
        rid = request.request_id
        if response_headers is not None:
            response_headers["x-model-version"] = str(version)
            response_headers["x-request-id"] = rid
        if isinstance(payload, InferRequest):
            return InferResponse(rid, self.name, answer.v2(), model_version=str(version))
        return {**answer.v1(), "model_version": version, "request_id": rid}

    def _rows(self, payload: object) -> list[list]:
        try:
            if isinstance(payload, InferRequest):
                check_v2_datatypes(
                    [(i.name, i.datatype, i.data) for i in payload.inputs], self._specs
                )
                tensors = [(i.name, i.shape, i.data) for i in payload.inputs]
                return rows_from_v2(tensors, self._specs, self.options.max_batch)
            return rows_from_v1(payload, self._specs, self.options.max_batch)
        except BadRequest as error:
            raise InvalidInput(str(error)) from error

    def _answer(self, served: _Served, version: int, request: ServedRequest) -> tuple[int, Answer]:
        """The answer of `version`; a failing canary is taken out and stable answers."""
        rows, loaded = request.rows, served.versions[version]
        try:
            answer = answer_rows(loaded.model, rows, self._features, loaded.classes)
            reason = answer.problem(len(rows))
        except Exception as error:
            answer, reason = Answer([]), f"raised {type(error).__name__}: {error}"
        if reason is None:
            return version, answer
        self._stats[version].record_error()
        request.failed(version)  # the S3 evidence counts it as the counters just did
        if version == served.routing.canary_version:
            self._take_out_canary(version, reason)
            return self._answer(served, served.routing.stable_version, request)
        raise InferenceError(f"{self.name} v{version} {reason}")


def announce_canary_failure(model: str, version: int, reason: str) -> None:
    """Tell the loop that the router took a canary out, so the failover automation records it.

    Only where a Prefect API is configured: a bare model server must never start one of its own.
    """
    if not os.environ.get("PREFECT_API_URL"):
        return
    from prefect.events import emit_event

    emit_event(
        event="mlops.serving.canary-failed",
        resource={"prefect.resource.id": f"mlops.model.{model}", "prefect.resource.name": model},
        payload={"version": version, "reason": reason},
    )
