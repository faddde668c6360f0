"""Training-set snapshots: every set a version was trained on, written once, named by its content.

    datasets/<model>/<digest>.parquet

The digest is `data_digest` of the frame as stored, so the name proves the content: a manifest
that points at a snapshot needs nothing outside the registry for lineage or drift references, and
moving or deleting the CSV a set came from changes nothing. Rows that came from serving traffic
keep their provenance columns (request id and row, where they came from) beside the contract's.
"""

from __future__ import annotations

import io

import pandas as pd

from tasks.data.loading import data_digest
from tasks.s3 import ObjectStore

# Columns a snapshot may carry besides the contract's: where each row came from.
PROVENANCE = ("request_id", "row", "origin")


class SnapshotMismatch(RuntimeError):
    """A snapshot's content no longer matches the digest in its name (or its manifest)."""


def snapshot_prefix(model: str) -> str:
    return f"datasets/{model}/"


def _canonical(frame: pd.DataFrame) -> tuple[pd.DataFrame, bytes]:
    """The frame as a reader will see it: written to Parquet and read back (dtypes included)."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    payload = buffer.getvalue()
    return pd.read_parquet(io.BytesIO(payload)), payload


def write_snapshot(store: ObjectStore, model: str, frame: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Store `frame` once under its digest; the s3:// URI and the frame exactly as stored."""
    stored, payload = _canonical(frame)
    key = f"{snapshot_prefix(model)}{data_digest(stored)}.parquet"
    if not store.exists(key):  # same name, same content: a second write would change nothing
        store.put_bytes(key, payload, "application/vnd.apache.parquet")
    stored.attrs["source"] = f"s3://{store.bucket}/{key}"
    return stored.attrs["source"], stored


def is_snapshot(uri: str, store: ObjectStore) -> bool:
    return uri.startswith(f"s3://{store.bucket}/datasets/") and uri.endswith(".parquet")


def read_snapshot(store: ObjectStore, uri: str, digest: str | None = None) -> pd.DataFrame:
    """The snapshot at `uri`, checked against the digest in its name (and `digest` if given)."""
    key = uri.removeprefix(f"s3://{store.bucket}/")
    frame = pd.read_parquet(io.BytesIO(store.get_bytes(key)))
    actual = data_digest(frame)
    named = key.rsplit("/", 1)[-1].removesuffix(".parquet")
    if actual != named or (digest is not None and actual != digest):
        raise SnapshotMismatch(f"{uri}: content digest {actual[:12]} does not match its name")
    frame.attrs["source"] = uri
    return frame


def without_provenance(frame: pd.DataFrame) -> pd.DataFrame:
    """The data columns alone, as the contract sees them."""
    return frame.drop(columns=[c for c in PROVENANCE if c in frame.columns])
