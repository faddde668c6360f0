"""The retrain flow: find the data → validate → snapshot → train → gate → register → announce."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import flow
from prefect.states import Completed

from tasks.registry.versions import open_registry
from tasks.runs import run_name
from tasks.settings import get_settings

if TYPE_CHECKING:
    from prefect.states import State

    from tasks.registry.versions import Manifest


@flow(name="retrain", flow_run_name=run_name("retrain"))
def retrain(
    data: str | None = None, reason: str = "manual", model_name: str | None = None
) -> Manifest | State:
    """Train a candidate and register it only if it beats the serving champion.

    With `data` (a CSV), on that batch; without (a drift alert), on the labelled serving traffic
    of the lookback plus the champion's training set; too few labels end the run "Deferred".
    With MLOPS_KFP_HOST set, the training set's snapshot is trained on as a Kubeflow pipeline.
    """
    # The training stack (scikit-learn, pandera) or kfp loads here, once the run is Running:
    # a worker's fresh process reports the run started without waiting seconds for imports.
    from tasks.registry.datasets import without_provenance
    from tasks.training import sources, stages

    settings = get_settings(model_name=model_name)
    registry = open_registry(settings, create_bucket=True)
    settings, contract = stages.model_setup(settings, registry)  # the model's stored configuration
    found = sources.find_training_set(data, settings, registry, contract)
    if found.frame is None:
        return Completed(name="Deferred", message=sources.defer_retrain(found, registry, reason))
    stages.validate_data(without_provenance(found.frame), contract)
    frame = sources.snapshot_training_set(found.frame, registry)
    if settings.kfp_host:  # the same recipe on the same snapshot, as a Kubeflow pipeline
        from tasks.kubeflow.retrain import retrain_on_kubeflow

        snapshot = frame.attrs["source"]
        manifest = retrain_on_kubeflow(snapshot, contract, settings, registry, reason)
    else:
        train, holdout = stages.split_data(frame, contract, settings)
        candidate = stages.train_candidate(frame, (train, holdout), contract, settings)
        champion = stages.score_champion(registry, holdout, contract, settings)
        verdict = stages.judge(candidate, champion, settings)
        stages.enforce_gate(verdict)
        manifest = stages.register_candidate(
            registry, candidate, verdict, contract, settings, reason
        )
    stages.announce_registration(manifest, reason)
    return manifest


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Retrain the model on a CSV (path or s3:// URI).")
    parser.add_argument(
        "--data", help="training CSV; default: MLOPS_DATA_URI, else labelled traffic"
    )
    parser.add_argument("--reason", default="manual")
    arguments = parser.parse_args()
    retrain(data=arguments.data, reason=arguments.reason)
