"""The data contract: the default loads; broken contracts are refused with the problem named."""

from pathlib import Path

import pytest

from tasks.data.contract import ContractError, load_contract
from tasks.settings import DEFAULT_CONTRACT


def test_default_contract_describes_house_prices() -> None:
    contract = load_contract(DEFAULT_CONTRACT)
    assert contract.target.name == "price"
    assert {"size_sqft", "bedrooms", "age_years"} <= set(contract.feature_names)
    assert any(column.dtype == "category" for column in contract.columns)
    assert len(contract.digest()) == 16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "must be a mapping"),
        ("name: x\ntarget: {name: y, dtype: float}\ncolumns: []\n", "columns"),
        (
            "name: x\ntarget: {name: y, dtype: float}\ncolumns: [{name: c, dtype: category}]\n",
            "needs a list of categories",
        ),
        (
            "name: x\ntarget: {name: y, dtype: float}\n"
            "columns: [{name: a, dtype: float, min: 5, max: 1}]\n",
            "min 5.0 is above max 1.0",
        ),
        (
            "name: x\ntarget: {name: y, dtype: float}\n"
            "columns: [{name: a, dtype: float}, {name: a, dtype: int}]\n",
            "columns listed twice",
        ),
        (
            "name: x\ntarget: {name: a, dtype: float}\ncolumns: [{name: a, dtype: float}]\n",
            "also listed as a feature",
        ),
        (
            "name: x\ntarget: {name: y, dtype: category, categories: [a]}\n"
            "columns: [{name: a, dtype: float}]\n",
            "must be numeric",
        ),
        ("name: x\ntarget: {name: y, dtype: text}\ncolumns: [{name: a, dtype: float}]\n", "dtype"),
        ("name: [unclosed\n", "cannot be read"),
    ],
)
def test_broken_contracts_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text(text)
    with pytest.raises(ContractError, match=r"invalid|mapping|cannot be read") as error:
        load_contract(path)
    assert message in str(error.value)


def test_missing_contract_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"not found: .*nope\.yaml"):
        load_contract(tmp_path / "nope.yaml")
