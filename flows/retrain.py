"""The retrain flow: validate → train → gate against the champion → register → announce."""

from __future__ import annotations

from prefect import flow

from tasks.kubeflow_steps import retrain_on_kubeflow
from tasks.registry import Manifest
from tasks.settings import get_settings
from tasks.steps import (
    announce_registration,
    enforce_gate,
    evaluate_candidate,
    judge,
    load_data,
    open_registry,
    read_contract,
    register_candidate,
    run_name,
    score_champion,
    split_data,
    train_candidate,
    validate_data,
)


@flow(name="retrain", flow_run_name=run_name("retrain"))
def retrain(
    data: str | None = None, reason: str = "manual", model_name: str | None = None
) -> Manifest:
    """Train a candidate on `data` and register it only if it beats the serving champion."""
    settings = get_settings(model_name=model_name)
    registry = open_registry(settings)
    if settings.kfp_host:  # the same steps, run as a Kubeflow pipeline on the cluster
        manifest = retrain_on_kubeflow(settings, registry, data, reason)
        announce_registration(manifest, reason)
        return manifest
    contract = read_contract(settings)
    frame = load_data(data, settings, registry.store)
    validate_data(frame, contract)
    train, holdout = split_data(frame, contract, settings)
    trained = train_candidate(train, contract, settings)
    evaluation = evaluate_candidate(trained, holdout, contract, settings)
    champion = score_champion(registry, holdout, contract, settings)
    verdict = judge(evaluation, champion, settings)
    enforce_gate(verdict)
    manifest = register_candidate(
        registry, trained, evaluation, frame, (contract, settings, verdict, reason)
    )
    announce_registration(manifest, reason)
    return manifest


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Retrain the model on a CSV (path or s3:// URI).")
    parser.add_argument("--data", help="training CSV; default MLOPS_DATA_URI")
    parser.add_argument("--reason", default="manual")
    arguments = parser.parse_args()
    retrain(data=arguments.data, reason=arguments.reason)
