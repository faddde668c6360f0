"""Malformed settings and data contracts: refused with the field or the problem named.

Settings are built from MLOPS_* variables as a deployment sets them; contracts are read from
files as the retrain flow reads them. The last cases run the real retrain and deploy flows with
a bad contract or bad settings against a served champion and prove that nothing moved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prefect.exceptions import ParameterTypeError
from pydantic import ValidationError

from flows.deploy import deploy
from flows.retrain import retrain
from infra.local_stack import environment
from tasks.data.contract import ContractError, load_contract
from tasks.data.validation import DataValidationError
from tasks.settings import DEFAULT_CONTRACT, get_settings
from tests.support.corpus import BAD_CONTRACTS, BAD_SETTINGS, BadContract, BadSetting

if TYPE_CHECKING:
    from tests.support.bad_world import World

AREA = "bad input: settings and contracts"


@pytest.mark.parametrize("case", BAD_SETTINGS, ids=lambda case: case.id)
def test_bad_setting_is_refused_naming_the_field(
    case: BadSetting, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as raised:
        get_settings()
    (error,) = raised.value.errors()
    assert ".".join(map(str, error["loc"])) == case.field
    assert case.names in error["msg"], error["msg"]
    reliability(
        AREA,
        f"setting: {case.id}",
        done=f"built the settings with {', '.join(f'{k}={v!r}' for k, v in case.env.items())}",
        expected=f"pydantic ValidationError on {case.field!r} ({case.names})",
        observed=f"ValidationError, 1 error at {error['loc'][0]!r}: {error['msg']}",
    )


@pytest.mark.parametrize("case", BAD_CONTRACTS, ids=lambda case: case.id)
def test_bad_contract_is_refused_naming_the_problem(
    case: BadContract, tmp_path: Path, reliability
) -> None:
    path = tmp_path / "contract.yaml"
    path.write_bytes(case.text)
    with pytest.raises(ContractError) as raised:
        load_contract(path)
    said = str(raised.value)
    assert case.names in said and str(path) in said, said
    if case.id != "no feature columns":  # a refused column must not also read as "no columns"
        assert "at least 1 item" not in said, said
    reliability(
        AREA,
        f"contract: {case.id}",
        done=f"load_contract on a {len(case.text)}-byte file: {case.text[:60]!r}",
        expected=f"ContractError naming the file and {case.names!r}",
        observed=f"ContractError: {said.replace(str(path), '<file>').splitlines()[0][:200]}",
    )


# -- the flows, given bad configuration ---------------------------------------------------------
@pytest.fixture
def world(bad_input_world: World) -> Iterator[World]:
    with bad_input_world.environment():
        yield bad_input_world


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("contracts")
    for case in BAD_CONTRACTS:
        (folder / f"{case.id.replace(' ', '-')}.yaml").write_bytes(case.text)
    strict = DEFAULT_CONTRACT.read_text().replace("min_rows: 50", "min_rows: 1000000")
    (folder / "strict.yaml").write_text(strict)
    return folder


@dataclass(frozen=True)
class FlowCase:
    id: str
    env: Callable[[Path], dict[str, str]]  # from the contracts folder to the variables to set
    run: Callable[[World, str], object]  # (world, a good data URI) -> run the flow
    error: type[Exception]
    names: str


def _contract(name: str) -> Callable[[Path], dict[str, str]]:
    return lambda folder: {"MLOPS_CONTRACT_PATH": str(folder / name)}


def _retrain(world: World, data: str) -> object:
    return retrain(data=data, reason="bad configuration")


FLOW_CASES = (
    FlowCase("retrain: contract lists a feature twice", _contract("duplicate-feature.yaml"),
             _retrain, ContractError, "columns listed twice"),
    FlowCase("retrain: contract with min above max", _contract("min-above-max.yaml"), _retrain,
             ContractError, "min 5.0 is above max 1.0"),
    FlowCase("retrain: contract not YAML", _contract("not-YAML.yaml"), _retrain, ContractError,
             "cannot be read"),
    FlowCase("retrain: contract file missing", _contract("no-such-contract.yaml"), _retrain,
             ContractError, "data contract not found"),
    FlowCase("retrain: valid contract the data does not meet", _contract("strict.yaml"), _retrain,
             DataValidationError, "too few rows: 1500 < 1000000"),
    FlowCase("retrain: NaN gate threshold", lambda f: {"MLOPS_MIN_R2": "nan"}, _retrain,
             ValidationError, "min_r2"),
    FlowCase("retrain: invalid model name parameter", lambda f: {},
             lambda w, d: retrain(data=d, model_name="House Price"), ValidationError,
             "model_name"),
    FlowCase("deploy: canary percent 80", lambda f: {},
             lambda w, d: deploy(version=w.champion.version, percent=80), ValidationError,
             "canary_percent"),
    FlowCase("deploy: percent not a number", lambda f: {},
             lambda w, d: deploy(version=w.champion.version, percent="eighty"),
             ParameterTypeError, "percent"),
    FlowCase("deploy: serving URL without scheme", lambda f: {"MLOPS_SERVING_URL": "127.0.0.1:1"},
             lambda w, d: deploy(version=w.champion.version), ValidationError, "serving_url"),
)  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("case", FLOW_CASES, ids=lambda case: case.id)
def test_flow_with_bad_configuration_changes_nothing(
    case: FlowCase, world: World, contracts: Path, reliability
) -> None:
    data = world.upload("good-for-config.csv", world.good.to_csv(index=False).encode())
    before = world.snapshot()
    with environment(case.env(contracts)), pytest.raises(case.error) as raised:
        case.run(world, data)
    said = str(raised.value)
    assert case.names in said, said
    after = world.snapshot()
    assert after == before
    reliability(
        AREA,
        f"flow: {case.id}",
        done=f"ran the real flow with {case.env(Path('<dir>')) or 'the bad parameter'} "
        "against a served champion",
        expected=f"{case.error.__name__} naming {case.names!r}; registry, aliases, history, "
        "routing and events unchanged",
        observed=f"{type(raised.value).__name__}: {' '.join(said.split())[:160]}. "
        f"Before = after: {after.describe()}",
    )
