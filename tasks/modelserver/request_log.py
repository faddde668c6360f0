"""One request's serving-log rows: its id, and what each version that handled it logs.

Every version that handles a request leaves its rows under the request's id: the one that
answered with status "ok" and the request's latency, one that failed (raised, or answered NaN/inf)
with status "error" and NaN predictions. A canary that fails and is answered for by stable thus
leaves both, so evidence read back from S3 counts the canary's error as the router's counters do.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

from kserve.protocol.infer_type import InferRequest

from tasks.modelserver.answers import Answer
from tasks.modelserver.log_writer import ServingLogWriter


@dataclass(frozen=True)
class ServedRequest:
    """A parsed request on its way through the router, logging to `writer` (None: not logged)."""

    request_id: str
    rows: list[list]
    writer: ServingLogWriter | None = None
    started: float = field(default_factory=time.perf_counter)  # time.perf_counter() on arrival

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def answered(self, version: int, answer: Answer, latency_ms: float) -> None:
        if self.writer is not None:
            self.writer.log(
                self.request_id,
                version,
                self.rows,
                answer.values,
                latency_ms=latency_ms,
                probabilities=answer.probabilities,
            )

    def failed(self, version: int) -> None:
        """`version` could not answer: its rows, NaN, with the time it took to fail."""
        if self.writer is not None:
            nan = [math.nan] * len(self.rows)
            self.writer.log(
                self.request_id,
                version,
                self.rows,
                nan,
                latency_ms=self.elapsed_ms(),
                status="error",
            )


def request_id(payload: object, headers: dict[str, str] | None) -> str:
    """The caller's id (x-request-id header, or the V2 request's id), else a fresh one."""
    if headers and headers.get("x-request-id"):
        return headers["x-request-id"]
    if isinstance(payload, InferRequest) and payload.id:
        return str(payload.id)
    return uuid.uuid4().hex


def writer_stats(writer: ServingLogWriter | None) -> dict[str, object] | None:
    """The writer's counters as `GET /mlops/v1/stats` reports them (None when logging is off)."""
    if writer is None:
        return None
    return {
        "files_written": writer.files_written,
        "rows_written": writer.rows_written,
        "rows_dropped": writer.rows_dropped,
        "last_error": writer.last_error,
    }
