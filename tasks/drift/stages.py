"""Prefect tasks of the drift check: find the reference, read the window, store and announce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from tasks.data.contract import DataContract
from tasks.data.loading import DataLoadError, load_csv
from tasks.decisions.drift import DriftPolicy
from tasks.drift.check import DriftReport, check_drift, report_html, report_json
from tasks.drift.markdown import drift_markdown
from tasks.events import model_resource
from tasks.modelserver.logs import read_serving_logs
from tasks.registry.versions import Manifest, ModelRegistry, VersionNotFound
from tasks.runs import task
from tasks.s3 import ObjectNotFound


class ReferenceMissing(RuntimeError):
    """The data the champion was trained on cannot be found: drift cannot be judged."""


@task
def champion_manifest(registry: ModelRegistry) -> Manifest:
    version = registry.alias("champion")
    if version is None:
        raise VersionNotFound(
            f"{registry.name} has no champion: no reference to check drift against"
        )
    return registry.manifest(version)


@task
def load_reference(manifest: Manifest, registry: ModelRegistry) -> pd.DataFrame:
    """The champion's training set: its snapshot in the registry, checked against its digest.

    Versions registered before snapshots point at their CSV; that still works while the CSV is
    there and unchanged.
    """
    from tasks.data.loading import data_digest
    from tasks.registry.datasets import (
        SnapshotMismatch,
        is_snapshot,
        read_snapshot,
        without_provenance,
    )

    source = manifest.data.source
    try:
        if is_snapshot(source, registry.store):
            return without_provenance(read_snapshot(registry.store, source, manifest.data.digest))
        frame = load_csv(source, registry.store)
    except (DataLoadError, ObjectNotFound, SnapshotMismatch) as error:
        raise ReferenceMissing(f"reference of v{manifest.version} is gone: {error}") from error
    if data_digest(frame) != manifest.data.digest:
        raise ReferenceMissing(
            f"{source} changed since v{manifest.version} was trained (digest differs)"
        )
    return frame


@task
def load_current(
    data: str | None, registry: ModelRegistry, contract: DataContract, window_hours: float
) -> pd.DataFrame:
    """A given batch, or the serving logs of the last window with any labels as the target."""
    if data:
        return load_csv(data, registry.store)
    until = datetime.now(UTC)
    logs = read_serving_logs(
        registry.store, registry.name, until - timedelta(hours=window_hours), until
    )
    # Answered rows only: a failed attempt's rows repeat inputs another version then answered.
    logs = logs[logs["status"] == "ok"]
    return logs.rename(columns={"label": contract.target.name})


@task
def judge_window(
    reference: pd.DataFrame, current: pd.DataFrame, contract: DataContract, policy: DriftPolicy
) -> DriftReport:
    return check_drift(reference, current, contract, policy)


@task
def store_reports(report: DriftReport, registry: ModelRegistry, manifest: Manifest) -> str | None:
    """HTML and JSON under reports/<name>/drift/<time>-v<N>.{html,json}: outside the version's
    folder, which KServe's storage initializer downloads for every pod."""
    if report.snapshot is None:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    key = f"reports/{registry.name}/drift/{stamp}-v{manifest.version}"
    registry.store.put_bytes(f"{key}.json", report_json(report.snapshot), "application/json")
    registry.store.put_bytes(f"{key}.html", report_html(report.snapshot), "text/html")
    return f"s3://{registry.store.bucket}/{key}.html"


@task
def publish_drift(report: DriftReport, report_url: str | None, model_name: str) -> None:
    create_markdown_artifact(
        drift_markdown(report.verdict, list(report.columns), report_url),
        key="drift-check",
        description=f"drift check of {model_name}",
    )


@task
def announce_drift(
    report: DriftReport, manifest: Manifest, data: str | None, report_url: str | None
) -> bool:
    """Emit `mlops.drift.detected` only on a drift verdict (never on insufficient data)."""
    verdict = report.verdict
    if verdict.status != "drift":
        return False
    summary = f"{verdict.share:.0%} of features drifted: {', '.join(verdict.drifted_columns)}"
    emit_event(
        event="mlops.drift.detected",
        resource=model_resource(manifest.name),
        payload={
            "summary": summary,
            "champion": manifest.version,
            "share": verdict.share,
            "drifted_columns": list(verdict.drifted_columns),
            "reasons": list(verdict.reasons),
            "data_uri": data,
            "report_url": report_url,
        },
    )
    return True
