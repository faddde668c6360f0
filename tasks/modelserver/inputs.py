"""Request bodies to model rows: V1 instances and V2 tensors checked against the served features.

Pure functions, no KServe and no I/O: every refusal is a `BadRequest` whose message names the
instance, the field and what was wrong, so the server can answer 400 with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.data.contract import DataContract


class BadRequest(ValueError):
    """The request cannot be served as sent; the message says why."""


@dataclass(frozen=True)
class FeatureSpec:
    """What the server accepts for one input column."""

    name: str
    numeric: bool
    nullable: bool = False
    categories: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


def feature_specs(features: Sequence[str], contract: DataContract) -> tuple[FeatureSpec, ...]:
    """Specs for a model's features, in the model's order; every feature must be in the contract."""
    missing = [name for name in features if name not in contract.feature_names]
    if missing:
        raise ValueError(f"model features {missing} are not in the data contract {contract.name}")
    specs = []
    for name in features:
        column = contract.column(name)
        specs.append(
            FeatureSpec(
                name=name,
                numeric=column.is_numeric,
                nullable=column.nullable,
                categories=tuple(column.categories or ()),
                low=column.min,
                high=column.max,
            )
        )
    return tuple(specs)


def _check_value(spec: FeatureSpec, value: object, where: str) -> object:
    if value is None:
        if spec.nullable:
            return math.nan if spec.numeric else None
        raise BadRequest(f"{where}: {spec.name!r} is null")
    if spec.numeric:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(
                f"{where}: {spec.name!r} must be a number, got {type(value).__name__} {value!r:.40}"
            )
        if not math.isfinite(value):
            raise BadRequest(f"{where}: {spec.name!r} must be finite, got {value!r}")
        return value
    if not isinstance(value, str):
        raise BadRequest(
            f"{where}: {spec.name!r} must be a string, got {type(value).__name__} {value!r:.40}"
        )
    return value


def _row(instance: object, specs: tuple[FeatureSpec, ...], where: str) -> list[object]:
    if isinstance(instance, dict):
        missing = [spec.name for spec in specs if spec.name not in instance]
        if missing:
            raise BadRequest(f"{where} is missing fields {missing}")
        unknown = sorted(set(instance) - {spec.name for spec in specs})
        if unknown:
            raise BadRequest(f"{where} has unknown fields {unknown}")
        return [_check_value(spec, instance[spec.name], where) for spec in specs]
    if isinstance(instance, list):
        if len(instance) != len(specs):
            raise BadRequest(
                f"{where} has {len(instance)} values; expected {len(specs)} in this order: "
                f"{[spec.name for spec in specs]}"
            )
        return [
            _check_value(spec, value, where) for spec, value in zip(specs, instance, strict=True)
        ]
    raise BadRequest(
        f"{where} must be an object keyed by feature name or a list of {len(specs)} values, "
        f"got {type(instance).__name__}"
    )


def _check_batch_size(count: int, max_batch: int) -> None:
    if count == 0:
        raise BadRequest("the request holds no instances")
    if count > max_batch:
        raise BadRequest(f"the request holds {count} instances; at most {max_batch} are allowed")


def rows_from_v1(payload: object, specs: tuple[FeatureSpec, ...], max_batch: int) -> list[list]:
    """Rows from a V1 body `{"instances": [...]}`; each instance a dict or a list in order."""
    if isinstance(payload, bytes | str):
        raise BadRequest("the body must be JSON (Content-Type: application/json)")
    if not isinstance(payload, dict) or "instances" not in payload:
        raise BadRequest('the body must be a JSON object with an "instances" list')
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise BadRequest(f'"instances" must be a list, got {type(instances).__name__}')
    _check_batch_size(len(instances), max_batch)
    return [_row(instance, specs, f"instance {i}") for i, instance in enumerate(instances)]


V2_NUMBER_TYPES = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32"}
    | {"UINT64"}
)


def check_v2_datatypes(
    tensors: Sequence[tuple[str, str, object]], specs: tuple[FeatureSpec, ...]
) -> None:
    """Each tensor's declared datatype must suit its feature: BYTES for a category, a number
    type for a number, an integer type only for whole numbers (given as (name, datatype, data))."""
    by_name = {spec.name: spec for spec in specs}
    for name, datatype, data in tensors:
        spec = by_name.get(name)
        if spec is None:
            continue  # rows_from_v2 names unknown tensors
        if not spec.numeric and datatype != "BYTES":
            raise BadRequest(f"tensor {name!r}: datatype {datatype} for a category; send BYTES")
        if spec.numeric and datatype not in V2_NUMBER_TYPES:
            raise BadRequest(f"tensor {name!r}: datatype {datatype} for a number; send FP64")
        values = data if isinstance(data, list) else []
        if "INT" in datatype and any(isinstance(v, float) and not v.is_integer() for v in values):
            raise BadRequest(f"tensor {name!r}: datatype {datatype} but fractional values")


def rows_from_v2(
    tensors: Sequence[tuple[str, Sequence[int], object]],
    specs: tuple[FeatureSpec, ...],
    max_batch: int,
) -> list[list]:
    """Rows from V2 inputs given as (name, shape, data): one tensor per feature, shape [N] or [N, 1]."""
    by_name = {name: (list(shape), data) for name, shape, data in tensors}
    if len(by_name) < len(tensors):  # else the last of two tensors silently wins
        names = [name for name, _, _ in tensors]
        raise BadRequest(
            f"V2 inputs repeat tensors {sorted({n for n in names if names.count(n) > 1})}"
        )
    missing = [spec.name for spec in specs if spec.name not in by_name]
    if missing:
        raise BadRequest(f"V2 inputs are missing tensors {missing}; send one tensor per feature")
    unknown = sorted(set(by_name) - {spec.name for spec in specs})
    if unknown:
        raise BadRequest(f"V2 inputs hold unknown tensors {unknown}")
    columns = []
    for spec in specs:
        shape, data = by_name[spec.name]
        if not isinstance(data, list) or any(isinstance(value, list) for value in data):
            raise BadRequest(f"tensor {spec.name!r}: data must be a flat list of values")
        if shape not in ([len(data)], [len(data), 1]):
            raise BadRequest(f"tensor {spec.name!r}: shape {shape} does not fit {len(data)} values")
        columns.append(data)
    counts = {len(column) for column in columns}
    if len(counts) > 1:
        raise BadRequest(f"V2 tensors differ in length: {sorted(counts)}")
    _check_batch_size(counts.pop(), max_batch)
    return [
        [_check_value(spec, value, f"row {i}") for spec, value in zip(specs, row, strict=True)]
        for i, row in enumerate(zip(*columns, strict=True))
    ]


def probe_rows(specs: tuple[FeatureSpec, ...], count: int = 16) -> list[list]:
    """A small deterministic batch spread over every feature's range, for probing a new version."""
    rows = []
    for i in range(count):
        share = (i + 0.5) / count
        row: list[object] = []
        for j, spec in enumerate(specs):
            if spec.numeric:
                low = spec.low if spec.low is not None else 0.0
                high = spec.high if spec.high is not None else low + 100.0
                # Stagger columns so the rows are not all "small" or all "large" together.
                row.append(low + (high - low) * ((share + j / len(specs)) % 1.0) * 0.5)
            else:
                row.append(
                    spec.categories[(i + j) % len(spec.categories)] if spec.categories else ""
                )
        rows.append(row)
    return rows
