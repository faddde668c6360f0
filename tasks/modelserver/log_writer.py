"""The serving-log writer: batches the model server's request records into Parquet files on S3.

It runs on a background thread: a request only appends a record to a queue. A flush freezes what
is queued into one object per day with its key fixed there: a put that failed, or whose answer
was lost, is retried under the same key, so a retry overwrites and never duplicates. The layout
and the readers are in tasks/modelserver/logs.py.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from tasks.modelserver.answers import proba_column
from tasks.modelserver.logs import META_COLUMNS, Status, log_key, to_parquet
from tasks.s3 import ObjectStore

LOG = logging.getLogger(__name__)


class LogRecord(NamedTuple):
    """One request as one version handled it: what a request appends to the writer's queue."""

    at: float  # epoch seconds
    request_id: str
    version: int
    rows: list[list]
    predictions: list[float]
    latency_ms: float = math.nan
    status: Status = "ok"
    probabilities: list[list[float]] | None = None  # a classifier's, per row, in class order


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class ServingLogWriter:
    """Batches request records and writes one Parquet file per interval or row threshold.

    `features` names the input columns; the served model sets it when it loads its first version.
    """

    def __init__(
        self,
        store: ObjectStore,
        model: str,
        features: Sequence[str] = (),
        flush_seconds: float = 10.0,
        flush_rows: int = 5000,
        max_buffer_rows: int = 500_000,
    ) -> None:
        self.store, self.model, self.features = store, model, list(features)
        self.flush_seconds, self.flush_rows, self.max_buffer_rows = (
            flush_seconds,
            flush_rows,
            max_buffer_rows,
        )
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="serving-log-writer", daemon=True)
        self._pending: list[LogRecord] = []
        self._pending_rows = 0
        # frozen (key, parquet, rows) parts, oldest first, each written under its own key
        self._unwritten: list[tuple[str, bytes, int]] = []
        self.files_written = 0
        self.rows_written = 0
        self.rows_dropped = 0
        self.last_error: str | None = None

    def start(self) -> ServingLogWriter:
        self._thread.start()
        return self

    def log(
        self,
        request_id: str,
        version: int,
        rows: list[list],
        predictions: list[float],
        at: float | None = None,
        *,
        latency_ms: float = math.nan,
        status: Status = "ok",
        probabilities: list[list[float]] | None = None,
    ) -> None:
        """Record one request `version` answered (or failed: status "error", predictions NaN)
        `at` (epoch seconds, default now), after `latency_ms`, with a classifier's probabilities:
        one append."""
        at = time.time() if at is None else at
        record = LogRecord(
            at, request_id, version, rows, predictions, latency_ms, status, probabilities
        )
        self._queue.put(record)

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued so far now; True once it is on S3 (or nothing was queued)."""
        request = _Flush()
        self._queue.put(request)
        return request.done.wait(timeout) and self.last_error is None

    def close(self, timeout: float = 30.0) -> None:
        """Write what is left and stop the thread (called on server shutdown)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._write()
                return
            if isinstance(item, _Flush):
                self._write()
                item.done.set()
                continue
            if item is not None:
                self._pending.append(item)
                self._pending_rows += len(item.rows)
            if self._pending_rows >= self.flush_rows or time.monotonic() >= deadline:
                self._write()
                deadline = time.monotonic() + self.flush_seconds

    def _write(self) -> None:
        if self._pending:
            frame = records_frame(self._pending, self.features)
            for _, part in frame.groupby(frame["ts"].dt.strftime("%Y-%m-%d"), sort=True):
                key = log_key(self.model, part["ts"].max())
                self._unwritten.append((key, to_parquet(part), len(part)))
            self._pending, self._pending_rows = [], 0
        while self._unwritten:
            key, payload, rows = self._unwritten[0]
            try:
                self.store.put_bytes(key, payload)
            except Exception as error:  # keep the part, key and all; try again at the next flush
                self.last_error = f"{type(error).__name__}: {error}"
                LOG.warning("serving logs not written, will retry: %s", self.last_error)
                self._drop_oldest_beyond_bound()
                return
            self._unwritten.pop(0)
            self.files_written += 1
            self.rows_written += rows
        self.last_error = None

    def _drop_oldest_beyond_bound(self) -> None:
        held = sum(rows for _, _, rows in self._unwritten)
        while held > self.max_buffer_rows and self._unwritten:
            _, _, rows = self._unwritten.pop(0)
            held -= rows
            self.rows_dropped += rows


def records_frame(records: Sequence[LogRecord], features: Sequence[str]) -> pd.DataFrame:
    """One row per served instance: time, request id, row index, version, latency, status,
    inputs, prediction, and a classifier's `proba_<i>` columns (NaN on failed rows)."""
    meta, inputs, outputs, probabilities = [], [], [], []
    width = max((len(r.probabilities[0]) for r in records if r.probabilities), default=0)
    for at, request_id, version, rows, predictions, latency_ms, status, proba in records:
        for index, (row, prediction) in enumerate(zip(rows, predictions, strict=True)):
            meta.append((at, request_id, index, version, latency_ms, status))
            inputs.append(row)
            outputs.append(prediction)
            probabilities.append(proba[index] if proba else [math.nan] * width)
    frame = pd.DataFrame(meta, columns=META_COLUMNS)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    frame = pd.concat([frame, pd.DataFrame(inputs, columns=list(features))], axis=1)
    frame["prediction"] = pd.Series(outputs, dtype="float64")
    if width:
        columns = [proba_column(i) for i in range(width)]
        frame[columns] = pd.DataFrame(probabilities, columns=columns, dtype="float64")
    return frame
