"""The CI checks flow: validate the data, train a candidate, run the gate and the model tests."""

from __future__ import annotations

from prefect import flow

from tasks.decisions.gate import GateVerdict
from tasks.runs import run_name
from tasks.settings import get_settings
from tasks.training.stages import (
    enforce_gate,
    judge,
    load_data,
    read_contract,
    split_data,
    train_candidate,
    validate_data,
)


@flow(name="ci-checks", flow_run_name=run_name("ci-checks"))
def ci_checks(data: str | None = None, model_name: str | None = None) -> GateVerdict:
    """Fail with every reason if the data breaks the contract or the candidate fails the gate.

    The gate here uses absolute thresholds and the behavioural tests only; comparing with the
    serving champion happens in `retrain`, where the registry is at hand.
    """
    settings = get_settings(model_name=model_name)
    contract = read_contract(settings)
    frame = load_data(data, settings)
    validate_data(frame, contract)
    train, holdout = split_data(frame, contract, settings)
    candidate = train_candidate(frame, (train, holdout), contract, settings)
    verdict = judge(candidate, None, settings)
    enforce_gate(verdict)
    return verdict


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the CI checks on a CSV (path or s3:// URI).")
    parser.add_argument("--data", help="CSV to check; default MLOPS_DATA_URI")
    ci_checks(data=parser.parse_args().data)
