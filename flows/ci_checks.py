"""The CI checks flow: validate the data, train a candidate, run the gate and the model tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import flow

from tasks.runs import run_name
from tasks.settings import get_settings

if TYPE_CHECKING:
    from tasks.decisions.gate import GateVerdict


@flow(name="ci-checks", flow_run_name=run_name("ci-checks"))
def ci_checks(data: str | None = None, model_name: str | None = None) -> GateVerdict:
    """Fail with every reason if the data breaks the contract or the candidate fails the gate.

    The gate here uses absolute thresholds and the behavioural tests only; comparing with the
    serving champion happens in `retrain`, where the registry is at hand.
    """
    from tasks.training import stages  # loads the training stack once the run is Running

    settings, contract = stages.model_setup(get_settings(model_name=model_name))
    frame = stages.load_data(data, settings)
    stages.validate_data(frame, contract)
    train, holdout = stages.split_data(frame, contract, settings)
    candidate = stages.train_candidate(frame, (train, holdout), contract, settings)
    verdict = stages.judge(candidate, None, settings)
    stages.enforce_gate(verdict)
    return verdict


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the CI checks on a CSV (path or s3:// URI).")
    parser.add_argument("--data", help="CSV to check; default MLOPS_DATA_URI")
    ci_checks(data=parser.parse_args().data)
