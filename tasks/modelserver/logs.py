"""Serving logs on S3: every request's inputs, prediction, version, id, time, latency and status,
plus late labels; their layout, and reading them back.

Layout under the bucket:
    serving-logs/<model>/date=YYYY-MM-DD/<HHMMSSffffff>-<token>.parquet   one file per flush and day
    serving-logs/<model>/labels/<YYYYMMDDTHHMMSSffffff>-<token>.parquet   ground truth, by request id

A log file is named by the time of its newest row, a label file by the time it was written: a
reader skips by name the files that cannot hold a window's rows. The model server writes the
logs with `ServingLogWriter` (tasks/modelserver/log_writer.py); failed requests are logged too
(status "error", prediction NaN), so evidence read back from S3 counts errors as the router did.
"""

from __future__ import annotations

import io
import math
import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pandas as pd

from tasks.data.contract import class_text
from tasks.s3 import ObjectStore

META_COLUMNS = ["ts", "request_id", "row", "version", "latency_ms", "status"]
Status = Literal["ok", "error"]


def logs_prefix(model: str) -> str:
    return f"serving-logs/{model}/"


def log_key(model: str, newest: pd.Timestamp) -> str:
    """Named by the day and time of its newest row: a reader skips it for windows after that.

    Not by the time of the write: a file of yesterday's last rows, written after midnight, would
    carry yesterday's date and today's clock: windows opening after that clock time would skip it.
    """
    name = f"{newest:%H%M%S%f}-{secrets.token_hex(4)}.parquet"
    return f"{logs_prefix(model)}date={newest:%Y-%m-%d}/{name}"


def to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def attach_labels(
    store: ObjectStore, model: str, labels: pd.DataFrame, classes: Sequence[str] | None = None
) -> str:
    """Store ground truth that arrived later: columns request_id, label and optionally row.

    A regressor's labels are numbers; a classifier's (give its `classes`) are class labels,
    stored as the contract's text ("1" for 1 or 1.0), and one outside the classes is refused."""
    missing = {"request_id", "label"} - set(labels.columns)
    if missing:
        raise ValueError(f"labels need columns request_id and label; missing {sorted(missing)}")
    frame = labels[[c for c in ("request_id", "row", "label") if c in labels.columns]].copy()
    if "row" not in frame.columns:
        frame["row"] = 0
    frame["request_id"] = frame["request_id"].astype(str)
    frame["row"] = frame["row"].astype("int64")
    if classes is None:
        frame["label"] = pd.to_numeric(frame["label"], errors="raise").astype("float64")
    else:
        frame["label"] = class_text(frame["label"])
        unknown = sorted(set(frame["label"].dropna()) - set(classes))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among the classes {list(classes)}")
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


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")


def _days(since: datetime, until: datetime) -> list[date]:
    first, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def log_file_keys(store: ObjectStore, model: str, since: datetime, until: datetime) -> list[str]:
    """Keys of the log files that can hold rows with since <= ts < until, by name.

    A file holds rows logged before it was named: files named before `since` cannot hold any,
    and the listing starts after them, so a window costs listing its own files only.
    """
    floor, start = _stamp(since), since.astimezone(UTC)
    keys = []
    for day in _days(since, until):
        prefix = f"{logs_prefix(model)}date={day.isoformat()}/"
        after = f"{prefix}{start:%H%M%S%f}" if day == start.date() else None
        listed = store.list_keys(prefix, start_after=after)
        keys += [k for k in listed if k.endswith(".parquet") and _written_at(k) >= floor]
    return sorted(keys)


def label_file_keys(store: ObjectStore, model: str, since: datetime | None = None) -> list[str]:
    """Keys of the label files written at or after `since` (all when None), by name.

    A label arrives after its request, so files written before `since` cannot hold the truth
    for requests made after it: they are not listed.
    """
    prefix = f"{logs_prefix(model)}labels/"
    if since is None:
        return sorted(store.list_keys(prefix))
    after = f"{prefix}{since.astimezone(UTC):%Y%m%dT%H%M%S%f}"
    floor = _stamp(since)
    return sorted(k for k in store.list_keys(prefix, start_after=after) if _written_at(k) >= floor)


def with_log_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows logged before latency and status were: answered requests only, so status "ok" and
    an unknown latency (NaN). A frame that has both columns is returned as it is."""
    missing = {"status": "ok", "latency_ms": math.nan}
    missing = {column: value for column, value in missing.items() if column not in frame.columns}
    return frame.assign(**missing) if missing else frame


def log_frame(payload: bytes) -> pd.DataFrame:
    """One log file's rows, old files' included (see `with_log_defaults`)."""
    return with_log_defaults(pd.read_parquet(io.BytesIO(payload)))


def label_frame(payload: bytes) -> pd.DataFrame:
    """One label file's rows: request_id, row, label, labelled_at."""
    return pd.read_parquet(io.BytesIO(payload))


def latest_labels(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One label per (request_id, row), the latest attached: a corrected label replaces the old."""
    if not frames:
        return pd.DataFrame(
            {
                "request_id": pd.Series(dtype=object),
                "row": pd.Series(dtype="int64"),
                "label": pd.Series(dtype="float64"),
                "labelled_at": pd.Series(dtype="datetime64[ns, UTC]"),
            }
        )
    labels = pd.concat(frames, ignore_index=True).sort_values("labelled_at", kind="stable")
    return labels.drop_duplicates(["request_id", "row"], keep="last")[
        ["request_id", "row", "label", "labelled_at"]
    ]


def read_labels(store: ObjectStore, model: str, since: datetime | None = None) -> pd.DataFrame:
    """Labels attached at or after `since` (all when None); the latest wins per (request_id, row)."""
    keys = label_file_keys(store, model, since)
    frames = [label_frame(store.get_bytes(key)) for key in keys]
    return latest_labels(frames)[["request_id", "row", "label"]]


def read_serving_logs(
    store: ObjectStore, model: str, since: datetime, until: datetime, with_labels: bool = True
) -> pd.DataFrame:
    """Logged rows with since <= ts < until, oldest first; a `label` column when asked."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware datetimes (use UTC)")
    keys = log_file_keys(store, model, since, until)
    frames = [log_frame(store.get_bytes(key)) for key in keys]
    if not frames:
        return pd.DataFrame(columns=[*META_COLUMNS, "prediction"])
    logs = pd.concat(frames, ignore_index=True)
    logs = logs[(logs["ts"] >= since) & (logs["ts"] < until)].sort_values("ts", kind="stable")
    if with_labels:
        labels = read_labels(store, model, since)
        logs = logs.merge(labels, on=["request_id", "row"], how="left")
    return logs.reset_index(drop=True)
