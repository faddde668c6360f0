"""The retrain flow: validate → train → gate against the champion → register → announce."""

from __future__ import annotations

from prefect import flow

from tasks.kubeflow.retrain import retrain_on_kubeflow
from tasks.registry.versions import Manifest, open_registry
from tasks.runs import run_name
from tasks.settings import get_settings
from tasks.training.stages import (
    announce_registration,
    enforce_gate,
    judge,
    load_data,
    read_contract,
    register_candidate,
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
    registry = open_registry(settings, create_bucket=True)
    if settings.kfp_host:  # the same recipe, run as a Kubeflow pipeline on the cluster
        manifest = retrain_on_kubeflow(settings, registry, data, reason)
        announce_registration(manifest, reason)
        return manifest
    contract = read_contract(settings)
    frame = load_data(data, settings, registry.store)
    validate_data(frame, contract)
    train, holdout = split_data(frame, contract, settings)
    candidate = train_candidate(frame, (train, holdout), contract, settings)
    champion = score_champion(registry, holdout, contract, settings)
    verdict = judge(candidate, champion, settings)
    enforce_gate(verdict)
    manifest = register_candidate(registry, candidate, verdict, contract, settings, reason)
    announce_registration(manifest, reason)
    return manifest


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Retrain the model on a CSV (path or s3:// URI).")
    parser.add_argument("--data", help="training CSV; default MLOPS_DATA_URI")
    parser.add_argument("--reason", default="manual")
    arguments = parser.parse_args()
    retrain(data=arguments.data, reason=arguments.reason)
