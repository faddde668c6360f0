"""A model's configuration lives in the registry beside its versions, signed, and every process
reads the same one: `mlops init --register` stores it; ci-checks, retrain and the model server
take the contract from it; its policies sit under the environment and a run's arguments.

Real SeaweedFS and the real flows; the data is scikit-learn's bundled diabetes set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.datasets import load_diabetes

from flows.ci_checks import ci_checks
from flows.cli import main as cli_main
from flows.retrain import retrain
from tasks.data.model_config import load_model_config
from tasks.data.validation import DataValidationError
from tasks.registry.configs import ConfigRefused, config_key, configured, read_config
from tasks.registry.versions import open_registry
from tasks.settings import Settings, get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def diabetes_csv(tmp_path: Path) -> Path:
    path = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


def register(flow_env: Settings, csv: Path, out: Path, extra: str = "") -> int:
    code = cli_main(["init", "--data", str(csv), "--target", "target", "--name",
                     flow_env.model_name, "--out", str(out), "--register"])  # fmt: skip
    if extra:  # policy sections a person set on review: the reviewed file is stored again
        kept = [line for line in out.read_text().splitlines(keepends=True)
                if line.split(":")[0] not in {"gate", "canary"}]  # fmt: skip
        out.write_text("".join(kept) + extra)
        code = cli_main(["init", "--data", str(csv), "--target", "target", "--name",
                         flow_env.model_name, "--out", str(out), "--register"])  # fmt: skip
    return code


def test_init_register_stores_the_configuration_signed_and_refuses_a_tampered_one(
    flow_env: Settings, diabetes_csv: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "diabetes.yaml"
    assert register(flow_env, diabetes_csv, out) == 0
    assert "registered it as" in capsys.readouterr().out
    registry = open_registry(flow_env)
    stored = read_config(registry)
    assert stored == load_model_config(out)
    assert stored.contract.target.name == "target" and len(stored.contract.columns) == 10

    key = config_key(registry)
    envelope = json.loads(registry.store.get_bytes(key))
    envelope["yaml"] = envelope["yaml"].replace("min_rows: 50", "min_rows: 1")
    registry.store.put_bytes(key, json.dumps(envelope).encode())
    with pytest.raises(ConfigRefused, match="does not match its signature"):
        read_config(registry)
    envelope["signature"] = None
    registry.store.put_bytes(key, json.dumps(envelope).encode())
    with pytest.raises(ConfigRefused, match="not signed"):
        read_config(registry)


def test_stored_policies_sit_under_the_environment_and_the_run(
    flow_env: Settings, diabetes_csv: Path, tmp_path: Path, monkeypatch
) -> None:
    extra = "gate: {champion_margin: 0.3}\ncanary: {max_window_s: 1234, alpha: 0.01}\n"
    assert register(flow_env, diabetes_csv, tmp_path / "d.yaml", extra) == 0
    registry = open_registry(flow_env)
    settings, contract = configured(get_settings(model_name=flow_env.model_name), registry)
    assert contract.name == flow_env.model_name
    assert (settings.gate.champion_margin, settings.canary.alpha) == (0.3, 0.01)
    assert settings.canary.max_window_s == 1234  # the model's, over the flows' run default
    run = get_settings(model_name=flow_env.model_name, canary_max_wait_s=99)
    assert configured(run, registry)[0].canary.max_window_s == 99  # the run's argument wins
    monkeypatch.setenv("MLOPS_GATE__CHAMPION_MARGIN", "0.05")
    assert configured(get_settings(), registry)[0].gate.champion_margin == 0.05  # env wins


def test_the_flows_take_the_contract_from_the_registry(
    flow_env: Settings, diabetes_csv: Path, tmp_path: Path
) -> None:
    """No MLOPS_CONTRACT_PATH: with the registered configuration, the diabetes data is checked
    and trained under its own contract; without it, under the house-price default, refused."""
    with pytest.raises(DataValidationError):
        ci_checks(data=str(diabetes_csv), model_name=flow_env.model_name)
    extra = "gate: {min_r2: 0.2, max_mape: 10.0}\n"  # a sound diabetes model reaches R² ≈ 0.45
    assert register(flow_env, diabetes_csv, tmp_path / "d.yaml", extra) == 0
    verdict = ci_checks(data=str(diabetes_csv), model_name=flow_env.model_name)
    assert verdict.passed, verdict.reasons
    manifest = retrain(data=str(diabetes_csv), model_name=flow_env.model_name, reason="own data")
    stored = read_config(open_registry(flow_env))
    assert manifest.contract["digest"] == stored.contract.digest()
    assert manifest.features == stored.contract.feature_names
