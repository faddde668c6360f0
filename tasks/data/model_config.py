"""The model configuration file `mlops init` writes: a `contract:` section and policy sections.

The layout is one YAML mapping:

    contract: {name, description, task, target, columns, rules}   # a DataContract
    training: {}                                                  # policy overrides; {} = the
    gate: {}                                                      # settings' defaults
    canary: {}
    drift: {}

`load_contract` reads the `contract:` section of such a file, and a plain contract file as
before; `load_model_config` reads either into a ModelConfig (a plain contract gets empty sections).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tasks.data.contract import ContractError, DataContract, load_contract

SECTIONS = ("training", "gate", "canary", "drift")


class ModelConfig(BaseModel):
    """One model's configuration: its data contract, and overrides of the policies' defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract: DataContract
    training: dict[str, Any] = {}
    gate: dict[str, Any] = {}
    canary: dict[str, Any] = {}
    drift: dict[str, Any] = {}

    @property
    def target_strictly_positive(self) -> bool:
        """Whether the contract keeps a regression target above zero (percentage errors defined)."""
        target = self.contract.target
        return self.contract.task == "regression" and target.min is not None and target.min > 0


def load_model_config(path: str | Path) -> ModelConfig:
    """Read a model configuration file, or a plain contract file; problems raise ContractError."""
    contract = load_contract(path)  # names every contract problem, and the unreadable file
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if "contract" not in raw:
        return ModelConfig(contract=contract)
    try:
        return ModelConfig.model_validate({**raw, "contract": contract})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise ContractError(f"model configuration {path} is invalid: {problems}") from error


def config_yaml(config: ModelConfig, decisions: list[str], source: str) -> str:
    """The file a person reviews: the decisions as a comment header, then the configuration."""
    contract = config.contract
    header = [
        f"# Model configuration inferred by `mlops init` from {source}.",
        "# Review it before use: ranges come from the sample, widened by a margin.",
        "# Empty policy sections use the settings' defaults (README, Settings).",
        "# Decisions:",
        *(f"#   {decision}" for decision in decisions),
    ]
    body = {
        "contract": {
            "name": contract.name,
            "description": contract.description,
            "task": contract.task,
            "target": _column(contract.target.model_dump(mode="json", exclude_defaults=True)),
            "columns": [
                _column(column.model_dump(mode="json", exclude_defaults=True))
                for column in contract.columns
            ],
            "rules": contract.rules.model_dump(mode="json"),
        },
        **{section: getattr(config, section) for section in SECTIONS},
    }
    text = yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(header) + "\n" + text


def write_config(path: Path, text: str, force: bool = False) -> None:
    """Write the file; an existing one is kept (FileExistsError) unless `force`."""
    with path.open("w" if force else "x", encoding="utf-8") as handle:
        handle.write(text)


def _column(fields: dict[str, Any]) -> dict[str, Any]:
    """Whole-number bounds as integers: `min: 1850`, not `min: 1850.0`."""
    return {
        key: int(value) if isinstance(value, float) and value.is_integer() else value
        for key, value in fields.items()
    }
