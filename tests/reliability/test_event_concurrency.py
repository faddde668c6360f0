"""Concurrency: a burst of drift alerts for one model must start exactly one retrain.

Real SeaweedFS, the session's real Prefect server with the retrain deployment of prefect.yaml
(its drift trigger, one firing per model per 120 s; its concurrency limit: 1, ENQUEUE, so
another model's retrain waits and is never lost), a real process worker.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from prefect.events import emit_event

from tasks.data.synthetic import generate_house_prices
from tasks.events import model_resource
from tasks.registry.versions import ModelRegistry
from tasks.s3 import connect
from tasks.settings import Settings
from tests.support.keys import TEST_KEY
from tests.support.prefect_faults import (
    deployed,
    private_pool,
    running_worker,
    runs_of,
    states_of,
    wait_until,
)

pytestmark = pytest.mark.integration

BURST = 10


def test_ten_drift_events_start_one_retrain(
    flow_env: Settings, tmp_path: Path, reliability
) -> None:
    data = tmp_path / "houses.csv"
    generate_house_prices(1500, seed=21).to_csv(data, index=False)
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.store.ensure_bucket()
    pool = private_pool()
    with deployed(["retrain"], pool) as ids:
        with running_worker(pool, tmp_path / "worker"):
            started = time.monotonic()
            for index in range(BURST):
                emit_event(
                    event="mlops.drift.detected",
                    resource=model_resource(flow_env.model_name),
                    payload={"summary": f"alert {index + 1} of {BURST}", "data_uri": str(data)},
                )
                time.sleep(0.2)
            burst_s = time.monotonic() - started
            runs = wait_until("the triggered run to end", lambda: _settled(ids["retrain"]), 300)
            settled_s = time.monotonic() - started
            time.sleep(3.0)  # time for a late firing to show up, if the trigger let one through
            runs = runs_of(ids["retrain"])
        paths = Counter(" → ".join(states_of(run.id)) for run in runs)
    states = Counter(run.state.name for run in runs)
    versions = [m.version for m in registry.versions()]

    assert len(runs) == 1, f"{len(runs)} runs for {BURST} events"
    assert all(r.created_by and r.created_by.type == "AUTOMATION" for r in runs)
    assert states == {"Completed": 1}, states
    assert versions == [1]
    reliability(
        "concurrency",
        f"{BURST} drift events in a few seconds",
        done=f"{BURST} `mlops.drift.detected` events for one model emitted in {burst_s:.1f}s to "
        "a Prefect server with the retrain deployment (drift trigger firing once per model "
        "per 120 s window; concurrency limit 1, ENQUEUE) and a process worker",
        expected="the burst collapses before runs are created: one retrain run, completed, no "
        "cancelled noise in the UI; the registry gets one new version",
        observed=f"{len(runs)} runs created by the automation, ended {dict(states)} within "
        f"{settled_s:.0f}s; state paths {dict(paths)}; registry versions {versions}",
    )


def _settled(deployment_id) -> list | None:
    """The runs, once there is one and none is still going."""
    runs = runs_of(deployment_id)
    done = len(runs) >= 1 and all(r.state and r.state.is_final() for r in runs)
    return runs if done else None
