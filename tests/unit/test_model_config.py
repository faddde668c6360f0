"""The model configuration file: its sections load, a plain contract still loads, and what
`mlops init` renders loads back to the very contract it was rendered from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.data.contract import ColumnSpec, ContractError, DataContract, load_contract
from tasks.data.model_config import ModelConfig, config_yaml, load_model_config, write_config
from tasks.settings import DEFAULT_CONTRACT

CONTRACT = DataContract(
    name="odd-values",
    task="classification",
    target=ColumnSpec(name="label", dtype="category", categories=("0", "1", "yes", "null")),
    columns=(
        ColumnSpec(name="code", dtype="category", categories=("007", "1e3", "true", "~")),
        ColumnSpec(name="year", dtype="int", min=1850, max=2040, nullable=True),
        ColumnSpec(name="ratio", dtype="float", min=-0.055, max=0.1 + 0.2),
    ),
)


def test_a_rendered_configuration_loads_back_to_the_same_contract(tmp_path: Path) -> None:
    """Category values YAML would read as numbers, booleans or null stay text."""
    path = tmp_path / "odd.yaml"
    text = config_yaml(ModelConfig(contract=CONTRACT), ["year: int, range 1850–2040"], "odd.csv")
    write_config(path, text)
    assert load_contract(path) == CONTRACT
    assert load_model_config(path) == ModelConfig(contract=CONTRACT)
    assert "#   year: int, range 1850–2040" in text and "min: 1850, max: 2040" in text


def test_a_plain_contract_file_is_a_configuration_with_default_policies() -> None:
    config = load_model_config(DEFAULT_CONTRACT)
    assert config.contract == load_contract(DEFAULT_CONTRACT)
    assert (config.training, config.gate, config.canary, config.drift) == ({}, {}, {}, {})
    assert config.target_strictly_positive  # the house contract's price has min 20000


def test_an_unknown_section_is_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(config_yaml(ModelConfig(contract=CONTRACT), [], "odd.csv") + "gat: {}\n")
    with pytest.raises(ContractError, match=r"odd\.yaml is invalid: gat: Extra inputs"):
        load_model_config(path)


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "kept.yaml"
    path.write_text("mine\n")
    with pytest.raises(FileExistsError):
        write_config(path, "new\n")
    assert path.read_text() == "mine\n"
    write_config(path, "new\n", force=True)
    assert path.read_text() == "new\n"
