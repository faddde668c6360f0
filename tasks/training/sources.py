"""Where a retrain's data comes from, as Prefect tasks: a given batch, or labelled serving traffic;
and the snapshot every training set becomes before anything trains on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.data.contract import DataContract
from tasks.data.labelled_traffic import TrafficSet, build_training_set
from tasks.data.loading import load_csv
from tasks.events import emit_model_event
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.datasets import is_snapshot, read_snapshot, write_snapshot
from tasks.registry.versions import ModelRegistry
from tasks.runs import task
from tasks.settings import Settings


def _reference(registry: ModelRegistry) -> pd.DataFrame | None:
    """The champion's training snapshot (None without a champion or with a pre-snapshot one)."""
    champion = registry.alias("champion")
    if champion is None:
        return None
    data = registry.manifest(champion).data
    if not is_snapshot(data.source, registry.store):
        return None
    return read_snapshot(registry.store, data.source, data.digest)


@task
def find_training_set(
    data: str | None, settings: Settings, registry: ModelRegistry, contract: DataContract
) -> TrafficSet:
    """The batch `data` (or MLOPS_DATA_URI) when given; else labelled traffic of the lookback."""
    source = data or settings.data_uri
    if source:
        frame = load_csv(source, registry.store)
        frame.attrs["source"] = source
        return TrafficSet(frame, len(frame), len(frame), 0, 0, 0)
    policy, until = settings.training_set, datetime.now(UTC)
    logs = read_serving_logs(
        registry.store, registry.name, until - timedelta(days=policy.lookback_days), until
    )
    reference = _reference(registry)
    found = build_training_set(logs, contract, policy, reference, settings.seed)
    get_run_logger().info("labelled traffic: %s", found.counts)
    return found


@task
def snapshot_training_set(frame: pd.DataFrame, registry: ModelRegistry) -> pd.DataFrame:
    """Write the set once under its digest; the frame as stored (its `source` is the snapshot)."""
    source, stored = write_snapshot(registry.store, registry.name, frame)
    get_run_logger().info("training set: %d rows, snapshot %s", len(stored), source)
    return stored


@task
def defer_retrain(found: TrafficSet, registry: ModelRegistry, reason: str) -> str:
    """Too few labelled rows: say so (event + artifact) and stop without failing."""
    message = (
        f"retrain deferred: {found.labelled_rows} labelled traffic rows"
        f" ({found.outside_contract} outside the contract) of {found.needed} needed;"
        f" champion v{registry.alias('champion')} stays. The next drift alert retries."
    )
    emit_model_event("mlops.retrain.deferred", registry.name, {**found.counts, "reason": reason})
    create_markdown_artifact(f"# {message}\n", key="retrain-deferred", description=registry.name)
    get_run_logger().warning(message)
    return message
