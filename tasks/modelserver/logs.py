"""Serving logs on S3: every request's inputs, prediction, version, id and time, plus late labels.

Layout under the bucket:
    serving-logs/<model>/date=YYYY-MM-DD/<HHMMSSffffff>-<token>.parquet   one file per flush and day
    serving-logs/<model>/labels/<YYYYMMDDTHHMMSSffffff>-<token>.parquet   ground truth, by request id

The writer runs on a background thread: a request only appends a tuple to a queue. A flush
freezes what is queued into one object per day with its key fixed there: a put that failed, or
whose answer was lost, is retried under the same key, so a retry overwrites and never duplicates.
"""

from __future__ import annotations

import io
import logging
import queue
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from tasks.s3 import ObjectStore

LOG = logging.getLogger(__name__)
META_COLUMNS = ["ts", "request_id", "row", "version"]


def logs_prefix(model: str) -> str:
    return f"serving-logs/{model}/"


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
        self._pending: list[tuple] = []
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
    ) -> None:
        """Record one answered request, answered `at` (epoch seconds, default now): one append."""
        self._queue.put((time.time() if at is None else at, request_id, version, rows, predictions))

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
                self._pending_rows += len(item[3])
            if self._pending_rows >= self.flush_rows or time.monotonic() >= deadline:
                self._write()
                deadline = time.monotonic() + self.flush_seconds

    def _write(self) -> None:
        if self._pending:
            frame = records_frame(self._pending, self.features)
            for _, part in frame.groupby(frame["ts"].dt.strftime("%Y-%m-%d"), sort=True):
                key = _log_key(self.model, part["ts"].max())
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


def records_frame(records: Sequence[tuple], features: Sequence[str]) -> pd.DataFrame:
    """One row per served instance: time, request id, row index, version, inputs, prediction."""
    meta, inputs, outputs = [], [], []
    for at, request_id, version, rows, predictions in records:
        for index, (row, prediction) in enumerate(zip(rows, predictions, strict=True)):
            meta.append((at, request_id, index, version))
            inputs.append(row)
            outputs.append(prediction)
    frame = pd.DataFrame(meta, columns=META_COLUMNS)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    frame = pd.concat([frame, pd.DataFrame(inputs, columns=list(features))], axis=1)
    frame["prediction"] = pd.Series(outputs, dtype="float64")
    return frame


def to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _log_key(model: str, newest: pd.Timestamp) -> str:
    """Named by the day and time of its newest row: a reader skips it for windows after that.

    Not by the time of the write: a file of yesterday's last rows, written after midnight, would
    carry yesterday's date and today's clock: windows opening after that clock time would skip it.
    """
    name = f"{newest:%H%M%S%f}-{secrets.token_hex(4)}.parquet"
    return f"{logs_prefix(model)}date={newest:%Y-%m-%d}/{name}"


def attach_labels(store: ObjectStore, model: str, labels: pd.DataFrame) -> str:
    """Store ground truth that arrived later: columns request_id, label and optionally row."""
    missing = {"request_id", "label"} - set(labels.columns)
    if missing:
        raise ValueError(f"labels need columns request_id and label; missing {sorted(missing)}")
    frame = labels[[c for c in ("request_id", "row", "label") if c in labels.columns]].copy()
    if "row" not in frame.columns:
        frame["row"] = 0
    frame["request_id"] = frame["request_id"].astype(str)
    frame["row"] = frame["row"].astype("int64")
    frame["label"] = pd.to_numeric(frame["label"], errors="raise").astype("float64")
    frame["labelled_at"] = pd.Timestamp.now(tz="UTC")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    key = f"{logs_prefix(model)}labels/{stamp}-{secrets.token_hex(4)}.parquet"
    store.put_bytes(key, to_parquet(frame))
    return key


def _written_at(key: str) -> str:
    """The UTC write stamp a log or label key carries, as sortable text (YYYYmmddHHMMSSffffff)."""
    name = key.rsplit("/", 1)[-1].split("-", 1)[0]
    if "/date=" in key:
        day = key.split("/date=", 1)[1].split("/", 1)[0].replace("-", "")
        return day + name
    return name.replace("T", "")


def read_labels(store: ObjectStore, model: str, since: datetime | None = None) -> pd.DataFrame:
    """Labels attached at or after `since` (all when None); the latest wins per (request_id, row).

    A label arrives after its request, so files written before `since` cannot hold the truth
    for requests made after it: they are not downloaded.
    """
    floor = "" if since is None else since.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")
    keys = sorted(
        key for key in store.list_keys(f"{logs_prefix(model)}labels/") if _written_at(key) >= floor
    )
    frames = [pd.read_parquet(io.BytesIO(store.get_bytes(key))) for key in keys]
    if not frames:
        return pd.DataFrame(
            {
                "request_id": pd.Series(dtype=object),
                "row": pd.Series(dtype="int64"),
                "label": pd.Series(dtype="float64"),
            }
        )
    labels = pd.concat(frames, ignore_index=True).sort_values("labelled_at", kind="stable")
    return labels.drop_duplicates(["request_id", "row"], keep="last")[
        ["request_id", "row", "label"]
    ]


def read_serving_logs(
    store: ObjectStore, model: str, since: datetime, until: datetime, with_labels: bool = True
) -> pd.DataFrame:
    """Logged rows with since <= ts < until, oldest first; a `label` column when asked."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware datetimes (use UTC)")
    first, last = since.astimezone(UTC).date().isoformat(), until.astimezone(UTC).date().isoformat()
    days = [
        key
        for key in store.list_keys(logs_prefix(model), recursive=False)
        if "/date=" in key and first <= key.rstrip("/").rsplit("=", 1)[-1] <= last
    ]
    # A file holds rows logged before it was written: files written before `since` are skipped.
    floor = since.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")
    keys = sorted(
        k
        for day in days
        for k in store.list_keys(day)
        if k.endswith(".parquet") and _written_at(k) >= floor
    )
    frames = [pd.read_parquet(io.BytesIO(store.get_bytes(key))) for key in keys]
    if not frames:
        return pd.DataFrame(columns=[*META_COLUMNS, "prediction"])
    logs = pd.concat(frames, ignore_index=True)
    logs = logs[(logs["ts"] >= since) & (logs["ts"] < until)].sort_values("ts", kind="stable")
    if with_labels:
        labels = read_labels(store, model, since)
        logs = logs.merge(labels, on=["request_id", "row"], how="left")
    return logs.reset_index(drop=True)
