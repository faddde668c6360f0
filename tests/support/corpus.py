"""The bad-input corpus as data: each case names how to make the bad input and the error it earns.

Data batches start from a good batch made by tasks/data/synthetic.py and damage it in one way only, so
the error a case expects is caused by that damage and nothing else. Requests, settings,
contracts and manifests follow the same pattern: a name, the bad thing, the expected exception
(or HTTP status) and a substring of its message that names the problem.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from tasks.data.loading import DataLoadError
from tasks.data.validation import DataValidationError
from tasks.registry.versions import IntegrityError, VersionNotFound

MILLION = 1_000_000


@dataclass(frozen=True)
class BadBatch:
    """A malformed training batch: `make` turns a good frame into the bytes of the bad file."""

    id: str
    make: Callable[[pd.DataFrame], bytes]
    error: type[Exception]
    names: str  # a substring of the error message that names the problem
    what: str  # what was done, for the reliability record


def csv_bytes(frame: pd.DataFrame, **options: object) -> bytes:
    return frame.to_csv(index=False, **options).encode()


def _with(frame: pd.DataFrame, column: str, rows: slice, value: object) -> bytes:
    bad = frame.copy()
    bad[column] = bad[column].astype(object)
    bad.loc[bad.index[rows], column] = value
    return csv_bytes(bad)


def _noise(size: int, seed: int, nul: bool) -> bytes:
    data = np.random.default_rng(seed).integers(0x80 if not nul else 0, 256, size, dtype=np.uint8)
    return data.tobytes()


def _latin1(frame: pd.DataFrame) -> bytes:
    bad = frame.copy()
    bad.loc[bad.index[:5], "exterior_color"] = "crème"
    return bad.to_csv(index=False).encode("latin-1")


def _gzipped(frame: pd.DataFrame) -> bytes:
    return gzip.compress(csv_bytes(frame), mtime=0)


def _duplicate_rows(frame: pd.DataFrame) -> bytes:
    return csv_bytes(pd.concat([frame, frame.head(len(frame) // 10)], ignore_index=True))


def _ragged(frame: pd.DataFrame) -> bytes:
    lines = frame.to_csv(index=False).splitlines()
    lines[7] += ",1,2"
    return ("\n".join(lines) + "\n").encode()


def _no_header(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, header=False).encode()


def _json_records(frame: pd.DataFrame) -> bytes:
    return json.dumps(frame.to_dict("records")).encode()


def _renamed(frame: pd.DataFrame) -> bytes:
    return csv_bytes(frame.rename(columns={"size_sqft": "size", "price": "Price"}))


def _extra(frame: pd.DataFrame) -> bytes:
    return csv_bytes(frame.assign(owner_name="Jane Doe", listing_id=range(len(frame))))


def _bedrooms_twice(frame: pd.DataFrame) -> bytes:
    return csv_bytes(frame.assign(dup=frame["bedrooms"]).rename(columns={"dup": "bedrooms"}))


def _words_for_numbers(frame: pd.DataFrame) -> bytes:
    bad = frame.copy()
    bad["bedrooms"] = bad["bedrooms"].map({1: "one", 2: "two", 3: "three"}).fillna("many")
    return csv_bytes(bad)


def _thousands(frame: pd.DataFrame) -> bytes:
    bad = frame.copy()
    bad["price"] = bad["price"].map(lambda value: f"{value:,.0f}")
    return csv_bytes(bad)


def _numeric_categories(frame: pd.DataFrame) -> bytes:
    bad = frame.copy()
    bad["neighborhood"] = bad["neighborhood"].astype("category").cat.codes
    return csv_bytes(bad)


def _empty_target(frame: pd.DataFrame) -> bytes:
    return csv_bytes(frame.assign(price=np.nan))


def _one_row(frame: pd.DataFrame) -> bytes:
    return csv_bytes(frame.head(1))


def identical_rows_csv(frame: pd.DataFrame, path: str, rows: int = MILLION) -> None:
    """`rows` copies of one good row, written by pandas in one go (about 60 MB for a million)."""
    frame.iloc[np.zeros(rows, dtype=int)].to_csv(path, index=False)


DATA_BATCHES: tuple[BadBatch, ...] = (
    BadBatch("empty", lambda f: b"", DataLoadError, "the file is empty", "a 0-byte file"),
    BadBatch("whitespace", lambda f: b" \n\t\n\r\n", DataLoadError,
             "the file is empty", "blanks only"),
    BadBatch("binary-garbage", lambda f: _noise(4096, 1, nul=True), DataLoadError,
             "binary content", "4 KiB of random bytes (with NULs)"),
    BadBatch("high-bytes-garbage", lambda f: _noise(4096, 2, nul=False), DataLoadError,
             "not UTF-8", "4 KiB of random bytes 0x80-0xff (no NUL)"),
    BadBatch("gzip", _gzipped, DataLoadError, "binary content", "the good CSV, gzip-compressed"),
    BadBatch("semicolons", lambda f: csv_bytes(f, sep=";"), DataLoadError,
             "wrong delimiter", "the good batch written with ';' as delimiter"),
    BadBatch("tabs", lambda f: csv_bytes(f, sep="\t"), DataLoadError,
             "wrong delimiter", "the good batch written as TSV"),
    BadBatch("header-only", lambda f: csv_bytes(f.head(0)), DataLoadError,
             "no data rows", "header only"),
    BadBatch("no-header", _no_header, DataValidationError,
             "'size_sqft': missing column", "the good rows without their header line"),
    BadBatch("json", _json_records, DataLoadError, "looks like JSON", "a JSON array of the rows"),
    BadBatch("ragged-row", _ragged, DataLoadError,
             "not a valid CSV", "row 7 has two more fields than the header"),
    BadBatch("unclosed-quote", lambda f: csv_bytes(f) + b'1,2,3,4,5,6,7,"downtown\n',
             DataLoadError, "not a valid CSV", "a last row with an unclosed quote"),
    BadBatch("missing-target", lambda f: csv_bytes(f.drop(columns="price")), DataValidationError,
             "'price': missing column", "the target column dropped"),
    BadBatch("empty-target", _empty_target, DataValidationError,
             "'price': null values", "the target column present but every cell empty"),
    BadBatch("renamed-columns", _renamed, DataValidationError,
             "'Price': column not in contract", "size_sqft renamed to size, price to Price"),
    BadBatch("extra-columns", _extra, DataValidationError, "'listing_id': column not in contract",
             "two columns the contract does not know (owner_name, listing_id)"),
    BadBatch("duplicated-column", _bedrooms_twice, DataLoadError,
             "duplicated column names ['bedrooms']", "the bedrooms column twice"),
    BadBatch("words-for-numbers", _words_for_numbers, DataValidationError,
             "'bedrooms': not a number (int)", "bedrooms spelled out ('three')"),
    BadBatch("thousands-separators", _thousands, DataValidationError,
             "'price': not a number (float)", 'prices written "412,300"'),
    BadBatch("nan-feature", lambda f: _with(f, "bathrooms", slice(0, 20), np.nan),
             DataValidationError, "'bathrooms': null values (20 failing)",
             "20 empty bathrooms cells"),
    BadBatch("inf-feature", lambda f: _with(f, "lot_size_sqft", slice(0, 3), np.inf),
             DataValidationError, "'lot_size_sqft': finite (3 failing)",
             "3 lot sizes 'inf'"),
    BadBatch("negative-size", lambda f: _with(f, "size_sqft", slice(0, 10), -1200.0),
             DataValidationError, "'size_sqft': outside the range",
             "10 sizes of -1200 sqft"),
    BadBatch("absurd-price", lambda f: _with(f, "price", slice(0, 4), 4.2e12), DataValidationError,
             "'price': outside the range", "4 prices of 4.2e12 USD"),
    BadBatch("fractional-count", lambda f: _with(f, "bedrooms", slice(0, 6), 2.5),
             DataValidationError, "'bedrooms': whole number",
             "6 houses with 2.5 bedrooms"),
    BadBatch("unseen-category", lambda f: _with(f, "neighborhood", slice(0, 30), "atlantis"),
             DataValidationError, "'neighborhood': unknown categories",
             "10% of rows in neighborhood 'atlantis' (2% tolerated)"),
    BadBatch("numeric-category-codes", _numeric_categories, DataValidationError,
             "'neighborhood': unknown categories", "neighborhood as integer codes 0-4"),
    BadBatch("one-row", _one_row, DataValidationError, "too few rows: 1 < 50", "a single good row"),
    BadBatch("duplicated-rows", _duplicate_rows, DataValidationError,
             "duplicated rows", "the first 10% of rows appended again"),
    BadBatch("latin-1", _latin1, DataLoadError, "not UTF-8", "colours 'crème' encoded in Latin-1"),
    BadBatch("utf-16", lambda f: f.to_csv(index=False).encode("utf-16"), DataLoadError,
             "binary content", "the good CSV encoded as UTF-16 (a BOM and NUL bytes)"),
)  # fmt: skip


# -- prediction requests ---------------------------------------------------------------------
Row = dict[str, object]  # one good instance keyed by feature name


@dataclass(frozen=True)
class BadCall:
    """A malformed prediction request: `body` turns one good instance into the raw body."""

    id: str
    protocol: Literal["v1", "v2"]
    body: Callable[[Row], bytes]
    status: int
    names: str  # a substring of the response body that names the problem
    what: str
    content_type: str = "application/json"
    model: str | None = None  # another model name in the URL; None: the served one
    headers: tuple[tuple[str, str], ...] = ()  # extra request headers


def v1(instances: object) -> bytes:
    return json.dumps({"instances": instances}).encode()  # NaN and Infinity as JS literals


def tensors(rows: list[Row], **override: dict[str, object]) -> list[dict[str, object]]:
    """V2 inputs, one tensor per feature; `override[name]` replaces fields of that tensor."""
    return [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": "BYTES" if isinstance(value, str) else "FP64",
            "data": [row[name] for row in rows],
        }
        | override.get(name, {})
        for name, value in rows[0].items()
    ]


def v2(inputs: object) -> bytes:
    return json.dumps({"id": "corpus", "inputs": inputs}).encode()


EMPTY = {"shape": [0], "data": []}


def _latin1_body(row: Row) -> bytes:
    body = {"instances": [{**row, "neighborhood": "café"}]}
    return json.dumps(body, ensure_ascii=False).encode("latin-1")


def _v1_dropped(row: Row, name: str) -> bytes:
    return v1([{key: value for key, value in row.items() if key != name}])


BAD_CALLS: tuple[BadCall, ...] = (
    BadCall("v1-not-json", "v1", lambda r: b'{"instances": [', 400, "Unrecognized request format",
            "a body cut off after '['"),
    BadCall("v1-latin-1", "v1", lambda r: _latin1_body(r), 400, "not valid UTF-8",
            "neighborhood 'café' in a Latin-1 encoded body"),
    BadCall("v1-too-deep", "v1", lambda r: b'{"instances": ' + b"[" * 3000 + b"]" * 3000 + b"}",
            400, "depth limit exceeded", "instances nested 3000 lists deep"),
    BadCall("v1-no-instances", "v1", lambda r: json.dumps({"inputs": [r]}).encode(), 400,
            'with an "instances" list', "a body with 'inputs' instead of 'instances'"),
    BadCall("v1-instances-not-list", "v1", lambda r: json.dumps({"instances": r}).encode(), 400,
            "must be a list, got dict", "instances given as one object"),
    BadCall("v1-empty", "v1", lambda r: v1([]), 400, "holds no instances", "instances: []"),
    BadCall("v1-wrong-feature-count", "v1", lambda r: v1([list(r.values())[:5]]), 400,
            "has 5 values; expected 9", "an instance as a list of 5 of the 9 values"),
    BadCall("v1-wrong-shape", "v1", lambda r: v1([[list(r.values())]]), 400,
            "has 1 values; expected 9", "an instance wrapped in one more list"),
    BadCall("v1-missing-field", "v1", lambda r: _v1_dropped(r, "bedrooms"), 400,
            "missing fields ['bedrooms']", "an instance without bedrooms"),
    BadCall("v1-unknown-field", "v1", lambda r: v1([{**r, "pool": 1}]), 400,
            "unknown fields ['pool']", "an instance with a 'pool' field"),
    BadCall("v1-string-for-number", "v1", lambda r: v1([{**r, "size_sqft": "big"}]), 400,
            "'size_sqft' must be a number, got str", "size_sqft: 'big'"),
    BadCall("v1-bool-for-number", "v1", lambda r: v1([{**r, "bedrooms": True}]), 400,
            "'bedrooms' must be a number, got bool", "bedrooms: true"),
    BadCall("v1-number-for-category", "v1", lambda r: v1([{**r, "neighborhood": 3}]), 400,
            "'neighborhood' must be a string, got int", "neighborhood: 3"),
    BadCall("v1-null", "v1", lambda r: v1([{**r, "bathrooms": None}]), 400,
            "'bathrooms' is null", "bathrooms: null"),
    BadCall("v1-nan", "v1", lambda r: v1([{**r, "size_sqft": math.nan}]), 400,
            "Unrecognized request format", "size_sqft: NaN (not valid JSON)"),
    BadCall("v1-infinity", "v1",
            lambda r: v1([{**r, "size_sqft": "INF"}]).replace(b'"INF"', b"1e999"), 400,
            "number is infinity", "size_sqft written 1e999"),
    BadCall("v1-huge-batch", "v1", lambda r: v1([r] * 1001), 400, "at most 1000 are allowed",
            "1001 instances (the server's max_batch is 1000)"),
    BadCall("v1-text-plain", "v1", lambda r: v1([r]), 400, "the body must be JSON",
            "a good body sent as text/plain", content_type="text/plain"),
    BadCall("v1-unknown-model", "v1", lambda r: v1([r]), 404, "Model with name nope-model does",
            "a good body for model 'nope-model'", model="nope-model"),
    BadCall("v2-not-json", "v2", lambda r: b"]]", 422, "JSON decode error", "the body ']]'"),
    BadCall("v2-no-inputs", "v2", lambda r: b'{"id": "x"}', 422,
            "InferenceRequest.inputs: Field required", "a body without inputs"),
    BadCall("v2-empty", "v2", lambda r: v2(tensors([r], **{n: EMPTY for n in r})), 400,
            "holds no instances", "every tensor empty, shape [0]"),
    BadCall("v2-missing-tensor", "v2", lambda r: v2(tensors([r])[1:]), 400,
            "missing tensors ['size_sqft']", "no size_sqft tensor"),
    BadCall("v2-repeated-tensor", "v2", lambda r: v2(tensors([r]) + tensors([r])[:1]), 400,
            "repeat tensors ['size_sqft']", "size_sqft sent twice"),
    BadCall("v2-wrong-shape", "v2", lambda r: v2(tensors([r], size_sqft={"shape": [3]})), 400,
            "shape [3] does not fit 1 values", "size_sqft shape [3] for 1 value"),
    BadCall("v2-2d-data", "v2", lambda r: v2(tensors([r], bedrooms={"data": [[3]]})), 400,
            "data must be a flat list", "bedrooms data [[3]]"),
    BadCall("v2-lengths-differ", "v2",
            lambda r: v2(tensors([r], age_years={"shape": [2], "data": [r["age_years"]] * 2})),
            400, "differ in length: [1, 2]", "age_years with 2 values, the rest with 1"),
    BadCall("v2-string-for-number", "v2", lambda r: v2(tensors([r], size_sqft={"data": ["x"]})),
            400, "'size_sqft' must be a number, got str", "size_sqft data ['x'] as FP64"),
    BadCall("v2-nan", "v2", lambda r: v2(tensors([r], size_sqft={"data": [math.nan]})), 400,
            "'size_sqft' must be finite, got nan", "size_sqft data [NaN]"),
    BadCall("v2-int-datatype-fraction", "v2",
            lambda r: v2(tensors([r], bathrooms={"datatype": "INT32", "data": [1.5]})), 400,
            "datatype INT32 but fractional values", "bathrooms 1.5 declared INT32"),
    BadCall("v2-bytes-for-number", "v2",
            lambda r: v2(tensors([r], size_sqft={"datatype": "BYTES", "data": ["1500"]})), 400,
            "datatype BYTES for a number", "size_sqft declared BYTES"),
    BadCall("v2-number-for-category", "v2",
            lambda r: v2(tensors([r], neighborhood={"datatype": "FP64", "data": [1.0]})), 400,
            "datatype FP64 for a category", "neighborhood declared FP64"),
    BadCall("v2-huge-batch", "v2", lambda r: v2(tensors([r] * 1001)), 400,
            "at most 1000 are allowed", "1001 rows per tensor (max_batch 1000)"),
    BadCall("v2-text-plain", "v2", lambda r: v2(tensors([r])), 400, "byte inputs",
            "a good body sent as text/plain", content_type="text/plain"),
    BadCall("v2-unknown-model", "v2", lambda r: v2(tensors([r])), 404,
            "Model with name nope-model does", "a good body for model 'nope-model'",
            model="nope-model"),
    BadCall("v1-body-over-limit", "v1", lambda r: v1([{**r, "neighborhood": "x" * 9_000_000}]),
            413, "-byte limit", "one instance with a 9 MB category (limit 8 MiB)"),
    BadCall("v2-body-over-limit", "v2",
            lambda r: v2(tensors([r], neighborhood={"data": ["x" * 9_000_000]})), 413,
            "-byte limit", "a 9 MB BYTES tensor (limit 8 MiB)"),
    BadCall("v1-request-id-too-long", "v1", lambda r: v1([r]), 400, "x-request-id must be",
            "a good body with a 5,000-character x-request-id",
            headers=(("x-request-id", "r" * 5000),)),
)  # fmt: skip


# -- settings and contracts ------------------------------------------------------------------
@dataclass(frozen=True)
class BadSetting:
    """MLOPS_* variables that must be refused when the settings are built, naming the field."""

    id: str
    env: dict[str, str]
    field: str  # the field the pydantic error must name (policy.field when nested)
    names: str  # and a substring of what it says about it


BAD_SETTINGS: tuple[BadSetting, ...] = (
    BadSetting("negative canary percent", {"MLOPS_CANARY_PERCENT": "-5"}, "canary_percent",
               "greater than or equal to 1"),
    BadSetting("canary percent above 50", {"MLOPS_CANARY_PERCENT": "75"}, "canary_percent",
               "less than or equal to 50"),
    BadSetting("canary percent in words", {"MLOPS_CANARY_PERCENT": "ten"}, "canary_percent",
               "valid integer"),
    BadSetting("empty number", {"MLOPS_S3_RETRIES": ""}, "s3_retries", "valid integer"),
    BadSetting("unknown serving target", {"MLOPS_SERVING_TARGET": "docker"}, "serving_target",
               "'local' or 'kubernetes'"),
    BadSetting("unknown drift method", {"MLOPS_DRIFT_METHOD": "ks"}, "drift.method",
               "'psi' or 'jensenshannon'"),
    BadSetting("S3 endpoint not a URL", {"MLOPS_S3_ENDPOINT": "not a url"}, "s3_endpoint",
               "is not an http(s)://host[:port] address"),
    BadSetting("S3 endpoint of another scheme", {"MLOPS_S3_ENDPOINT": "ftp://127.0.0.1:21"},
               "s3_endpoint", "is not an http(s)://host[:port] address"),
    BadSetting("S3 endpoint port out of range", {"MLOPS_S3_ENDPOINT": "http://127.0.0.1:99999"},
               "s3_endpoint", "is not an http(s)://host[:port] address"),
    BadSetting("S3 endpoint with a path", {"MLOPS_S3_ENDPOINT": "http://127.0.0.1:9000/mlops"},
               "s3_endpoint", "is not an http(s)://host[:port] address"),
    BadSetting("serving URL without scheme", {"MLOPS_SERVING_URL": "localhost:8080"},
               "serving_url", "is not an http(s)://host[:port] address"),
    BadSetting("gate threshold NaN", {"MLOPS_MIN_R2": "nan"}, "gate.min_r2", "finite number"),
    BadSetting("MAPE bound infinite", {"MLOPS_MAX_MAPE": "inf"}, "gate.max_mape", "finite number"),
    BadSetting("canary wait infinite", {"MLOPS_CANARY_MAX_WAIT_S": "inf"}, "canary.max_window_s",
               "finite number"),
    BadSetting("holdout of 90%", {"MLOPS_HOLDOUT_FRACTION": "0.9"}, "holdout_fraction",
               "less than 0.5"),
    BadSetting("negative seed", {"MLOPS_SEED": "-1"}, "seed", "greater than or equal to 0"),
    BadSetting("bucket with capitals", {"MLOPS_BUCKET": "My_Bucket"}, "bucket",
               "not a valid S3 bucket name"),
    BadSetting("model name with spaces", {"MLOPS_MODEL_NAME": "House Price"}, "model_name",
               "should match pattern"),
    BadSetting("S3 retries above 10", {"MLOPS_S3_RETRIES": "11"}, "s3_retries",
               "less than or equal to 10"),
)  # fmt: skip


@dataclass(frozen=True)
class BadContract:
    """A data contract file that load_contract must refuse with a ContractError naming this."""

    id: str
    text: bytes
    names: str


_TARGET = "target: {name: price, dtype: float}\n"
_ONE = "columns: [{name: size, dtype: float}]\n"


def _contract(body: str) -> bytes:
    return f"name: bad\n{body}".encode()


BAD_CONTRACTS: tuple[BadContract, ...] = (
    BadContract("missing target", _contract(_ONE), "target: Field required"),
    BadContract("no feature columns", _contract(_TARGET + "columns: []\n"), "columns:"),
    BadContract("duplicate feature",
                _contract(_TARGET + "columns: [{name: a, dtype: float}, {name: a, dtype: int}]\n"),
                "columns listed twice: ['a']"),
    BadContract("min above max",
                _contract(_TARGET + "columns: [{name: a, dtype: float, min: 5, max: 1}]\n"),
                "min 5.0 is above max 1.0"),
    BadContract("unknown dtype", _contract(_TARGET + "columns: [{name: a, dtype: text}]\n"),
                "columns.0.dtype: Input should be 'float', 'int' or 'category'"),
    BadContract("target also a feature",
                _contract(_TARGET + "columns: [{name: price, dtype: float}]\n"),
                "target 'price' is also listed as a feature"),
    BadContract("categorical target",
                _contract("target: {name: y, dtype: category, categories: [a]}\n" + _ONE),
                "must be numeric"),
    BadContract("category without categories",
                _contract(_TARGET + "columns: [{name: c, dtype: category}]\n"),
                "needs a list of categories"),
    BadContract("misspelt key",
                _contract(_TARGET + "columns: [{name: a, dtype: float, nulable: true}]\n"),
                "columns.0.nulable: Extra inputs are not permitted"),
    BadContract("rule out of range",
                _contract(_TARGET + _ONE + "rules: {max_duplicate_share: 1.5}\n"),
                "rules.max_duplicate_share"),
    BadContract("not YAML", b"name: [unclosed\n  target: {", "cannot be read"),
    BadContract("a list, not a mapping", b"- name: price\n- name: size\n", "must be a mapping"),
    BadContract("empty file", b"", "must be a mapping, got NoneType"),
    BadContract("not UTF-8", _contract(_TARGET + _ONE).replace(b"size", b"gr\xf6\xdfe"),
                "cannot be read"),
    BadContract("YAML python tag", b"name: !!python/object/apply:os.getpid []\n" + _TARGET.encode(),
                "cannot be read"),
)  # fmt: skip


# -- tampering -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tampering:
    """Damage done in S3 to a registered version's file: `damage` maps the old bytes to new."""

    id: str
    file: Literal["model.joblib", "manifest.json"]
    damage: Callable[[bytes], bytes | None]  # None: the object is deleted
    error: type[Exception]
    names: str


def _edit_manifest(**fields: object) -> Callable[[bytes], bytes]:
    return lambda raw: json.dumps({**json.loads(raw), **fields}).encode()


def _without(field: str) -> Callable[[bytes], bytes]:
    return lambda raw: json.dumps({k: v for k, v in json.loads(raw).items() if k != field}).encode()


def _flip_byte(raw: bytes) -> bytes:
    middle = len(raw) // 2
    return raw[:middle] + bytes([raw[middle] ^ 0x01]) + raw[middle + 1 :]


TAMPERINGS: tuple[Tampering, ...] = (
    Tampering("model: random bytes", "model.joblib", lambda raw: _noise(4096, 3, nul=True),
              IntegrityError, "does not match the manifest's"),
    Tampering("model: one flipped bit", "model.joblib", _flip_byte, IntegrityError,
              "does not match the manifest's"),
    Tampering("model: truncated", "model.joblib", lambda raw: raw[: len(raw) // 2], IntegrityError,
              "does not match the manifest's"),
    # Signing is on by default: any edit of a signed manifest is refused by its signature first,
    # before the manifest is parsed (without a key, MLOPS_ALLOW_UNSIGNED, the checks behind it
    # name these: "manifest is not valid", "does not match the manifest's", "describes ...").
    Tampering("manifest: invalid JSON", "manifest.json", lambda raw: raw[:-40], IntegrityError,
              "the manifest does not match its signature"),
    Tampering("manifest: sha256 changed", "manifest.json", _edit_manifest(sha256="0" * 64),
              IntegrityError, "the manifest does not match its signature"),
    Tampering("manifest: sha256 field removed", "manifest.json", _without("sha256"), IntegrityError,
              "the manifest does not match its signature"),
    Tampering("manifest: deleted", "manifest.json", lambda raw: None, VersionNotFound,
              "does not exist (no manifest)"),
    Tampering("manifest: version disagrees with its path", "manifest.json",
              _edit_manifest(version=1), IntegrityError, "the manifest does not match its signature"),
    Tampering("manifest: another model's name", "manifest.json",
              _edit_manifest(name="someone-else"), IntegrityError,
              "the manifest does not match its signature"),
)  # fmt: skip
