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


CLASSIFIER = (
    "name: churn\ntask: classification\n"
    "target: {name: left, dtype: category, categories: ['no', 'yes']}\n"
    "columns: [{name: tenure, dtype: int, min: 0}]\n"
)


def test_a_classification_contract_lists_its_classes(tmp_path: Path) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text(CLASSIFIER)
    contract = load_contract(path)
    assert (contract.task, contract.classes) == ("classification", ("no", "yes"))
    assert load_contract(DEFAULT_CONTRACT).classes is None


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{name: left, dtype: float}", "must be a category column listing at least two classes"),
        ("{name: left, dtype: category, categories: [stayed]}", "at least two classes"),
    ],
)
def test_a_classification_target_needs_two_classes(
    tmp_path: Path, target: str, message: str
) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text(
        CLASSIFIER.replace("{name: left, dtype: category, categories: ['no', 'yes']}", target)
    )
    with pytest.raises(ContractError, match=message):
        load_contract(path)


def test_a_regression_contract_keeps_the_digest_it_had_before_contracts_had_a_task(
    tmp_path: Path,
) -> None:
    """Manifests record the digest; be6212e5bb65b8c5 was computed before `task` existed."""
    path = tmp_path / "energy.yaml"
    path.write_text(
        "name: energy-use\ntarget: {name: kwh, dtype: float, min: 0}\ncolumns:\n"
        "  - {name: temperature_c, dtype: float, min: -40, max: 50, monotonic: increasing}\n"
        "  - {name: site, dtype: category, categories: [north, south], slice: true}\n"
        "rules: {min_rows: 200, max_unknown_category_share: 0.02}\n"
    )
    assert load_contract(path).digest() == "be6212e5bb65b8c5"
    path.write_text(CLASSIFIER)
    classifier = load_contract(path)
    assert classifier.digest() != classifier.model_copy(update={"task": "regression"}).digest()


def test_the_contract_section_of_a_model_configuration_is_read(tmp_path: Path) -> None:
    path = tmp_path / "churn.yaml"
    indented = "".join(f"  {line}\n" for line in CLASSIFIER.splitlines())
    path.write_text(f"contract:\n{indented}training: {{}}\ngate: {{}}\n")
    assert load_contract(path).name == "churn"
    path.write_text("contract: [not, a, mapping]\n")
    with pytest.raises(ContractError, match="must be a mapping, got list"):
        load_contract(path)
