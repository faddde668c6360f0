"""Reading data sets: a CSV from a path or an s3:// URI (or a local Parquet file), with errors
that name the problem."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from tasks.s3 import ObjectNotFound, ObjectStore


class DataLoadError(ValueError):
    """The source could not be read as a CSV table."""


def read_source(source: str | Path, store: ObjectStore | None = None) -> bytes:
    """The raw bytes of a local path or an s3://bucket/key URI."""
    text = str(source)
    if text.startswith("s3://"):
        url = urlparse(text)
        if store is None:
            raise DataLoadError(f"{text}: an s3:// source needs an S3 connection")
        if url.netloc != store.bucket:
            raise DataLoadError(
                f"{text}: bucket {url.netloc!r} is not the configured {store.bucket!r}"
            )
        try:
            return store.get_bytes(url.path.lstrip("/"))
        except ObjectNotFound as error:
            raise DataLoadError(f"{text}: no such object") from error
    try:
        return Path(text).read_bytes()
    except FileNotFoundError as error:
        raise DataLoadError(f"{text}: file not found") from error
    except IsADirectoryError as error:
        raise DataLoadError(f"{text}: is a directory, not a CSV file") from error


def parse_csv(raw: bytes, name: str = "data") -> pd.DataFrame:
    """Parse CSV bytes strictly: UTF-8, a header, at least one data row, no duplicated columns."""
    if not raw.strip():
        raise DataLoadError(f"{name}: the file is empty")
    if b"\x00" in raw[:65536]:
        raise DataLoadError(f"{name}: binary content (NUL bytes), not a CSV file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataLoadError(
            f"{name}: not UTF-8 text (byte {error.start}: {raw[error.start : error.start + 1]!r})"
        ) from error
    if text.lstrip()[:1] in ("[", "{"):  # else its keys and values pose as hundreds of columns
        raise DataLoadError(f"{name}: looks like JSON (starts with {text.lstrip()[:1]!r}), not CSV")
    header = next(csv.reader(io.StringIO(text)), [])
    if len(header) < 2:
        raise DataLoadError(
            f"{name}: the header has {len(header)} column(s) ({header[:1]}); "
            "not a comma-separated table (wrong delimiter?)"
        )
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        raise DataLoadError(f"{name}: duplicated column names {duplicated}")
    try:
        frame = pd.read_csv(io.StringIO(text), low_memory=False)
    except (pd.errors.ParserError, ValueError) as error:
        raise DataLoadError(f"{name}: not a valid CSV: {error}") from error
    if frame.empty:
        raise DataLoadError(f"{name}: a header but no data rows")
    return frame


def load_csv(source: str | Path, store: ObjectStore | None = None) -> pd.DataFrame:
    """Load a CSV data set from a path or an s3:// URI."""
    return parse_csv(read_source(source, store), name=str(source))


def read_table(path: str | Path) -> pd.DataFrame:
    """A local .csv file (read as load_csv reads it) or .parquet file; other types are refused."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(path)
    if suffix != ".parquet":
        raise DataLoadError(f"{path}: a {suffix or 'suffix-less'} file; expected .csv or .parquet")
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError as error:
        raise DataLoadError(f"{path}: file not found") from error
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise DataLoadError(f"{path}: not a readable Parquet file: {error}") from error
    if frame.empty:
        raise DataLoadError(f"{path}: no data rows")
    return frame


def data_digest(frame: pd.DataFrame) -> str:
    """A content hash of the frame (values, columns and order), recorded in model manifests."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def split_holdout(
    frame: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded train/holdout split; the same data and seed always give the same holdout."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = round(len(frame) * (1 - fraction))
    return (
        frame.iloc[order[:cut]].reset_index(drop=True),
        frame.iloc[order[cut:]].reset_index(drop=True),
    )
