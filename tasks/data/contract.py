"""The data contract: which columns a data set has, their types and ranges, and the target."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    import pandas as pd

ColumnType = Literal["float", "int", "category"]
Task = Literal["regression", "classification"]


class ContractError(ValueError):
    """The contract file is missing, unreadable or inconsistent."""


class ColumnSpec(BaseModel):
    """One column: its type, the values it may take, and what the model must respect about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    dtype: ColumnType
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    categories: tuple[str, ...] | None = None
    monotonic: Literal["increasing", "decreasing"] | None = None
    invariant: bool = False
    slice: bool = False
    slice_bins: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.dtype == "category":
            if not self.categories:
                raise ValueError(f"category column {self.name!r} needs a list of categories")
            if self.min is not None or self.max is not None or self.monotonic:
                raise ValueError(f"category column {self.name!r} cannot have min/max/monotonic")
        elif self.categories is not None:
            raise ValueError(f"numeric column {self.name!r} cannot list categories")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} is above max {self.max}")
        if self.slice_bins is not None and list(self.slice_bins) != sorted(set(self.slice_bins)):
            raise ValueError(f"column {self.name!r}: slice_bins must be strictly increasing")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.dtype != "category"


class ContractRules(BaseModel):
    """Rules about the data set as a whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_rows: int = Field(50, ge=1)
    max_duplicate_share: float = Field(0.01, ge=0, le=1)
    max_unknown_category_share: float = Field(0.02, ge=0, le=1)
    allow_extra_columns: bool = False


class DataContract(BaseModel):
    """A tabular data set: feature columns, one target, data-set rules.

    A regression target is numeric; a classification target is a category column whose
    categories are the classes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    target: ColumnSpec
    columns: tuple[ColumnSpec, ...] = Field(min_length=1)
    rules: ContractRules = ContractRules()
    task: Task = "regression"  # last, so a regression contract's digest is what it was before

    @model_validator(mode="after")
    def _consistent(self) -> DataContract:
        names = [column.name for column in self.columns]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"columns listed twice: {duplicates}")
        if self.target.name in names:
            raise ValueError(f"target {self.target.name!r} is also listed as a feature")
        if self.task == "regression" and not self.target.is_numeric:
            raise ValueError(
                "the target of a regression contract must be numeric"
                " (a category target needs task: classification)"
            )
        if self.task == "classification" and len(self.target.categories or ()) < 2:
            raise ValueError(
                "the target of a classification contract must be a category column"
                " listing at least two classes"
            )
        return self

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The class labels of a classification target; None for regression."""
        return self.target.categories if self.task == "classification" else None

    @property
    def feature_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def all_names(self) -> list[str]:
        return [*self.feature_names, self.target.name]

    def column(self, name: str) -> ColumnSpec:
        for spec in (*self.columns, self.target):
            if spec.name == name:
                return spec
        raise KeyError(name)

    def digest(self) -> str:
        """A stable fingerprint of the contract, recorded in every model manifest.

        A regression contract leaves `task` out, so its fingerprint is the one recorded before
        contracts had a task.
        """
        exclude = {"task"} if self.task == "regression" else None
        return hashlib.sha256(self.model_dump_json(exclude=exclude).encode()).hexdigest()[:16]


def load_contract(path: str | Path) -> DataContract:
    """Read and check a contract file; every problem is named in one ContractError."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ContractError(f"data contract not found: {path}") from error
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ContractError(f"data contract {path} cannot be read: {error}") from error
    if isinstance(raw, dict) and "contract" in raw:
        raw = raw["contract"]  # a model configuration file (`mlops init`): its contract section
    if not isinstance(raw, dict):
        raise ContractError(f"data contract {path} must be a mapping, got {type(raw).__name__}")
    try:
        return DataContract.model_validate(raw)
    except ValidationError as error:
        items = error.errors()
        # A refused column also leaves its list one short: that "too short" is noise, not news.
        items = [i for i in items if i["type"] != "too_short" or not _has_inner(i, items)]
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'contract'}: {item['msg']}"
            for item in items
        )
        raise ContractError(f"data contract {path} is invalid: {problems}") from error


def _has_inner(item: dict, items: list[dict]) -> bool:
    """Whether another error lies inside `item`'s location (e.g. columns.0 inside columns)."""
    loc = item["loc"]
    return any(len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in items)


def class_text(values: pd.Series) -> pd.Series:
    """Class labels as the contract's text: whole numbers without ".0", missing stays missing."""

    def text(value: object) -> object:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return values.map(text).astype(object)
