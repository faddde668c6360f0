"""What happened, read back from the Prefect server: every flow run, how it started, how it ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import get_client
from prefect.client.schemas.sorting import FlowRunSort


def flow_run_lines(ui_url: str) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_ASC, limit=200)
    soon = datetime.now(UTC) + timedelta(minutes=1)
    runs = [run for run in runs if (run.expected_start_time or soon) < soon]  # not future schedules
    if not runs:
        return ["(no flow runs)"]
    origin = min(run.start_time or run.expected_start_time for run in runs)
    lines = []
    for run in runs:
        started = run.start_time or run.expected_start_time
        offset = (started - origin).total_seconds()
        took = f"{run.total_run_time.total_seconds():5.1f}s" if run.total_run_time else "  —   "
        by = run.created_by.type.lower() if run.created_by and run.created_by.type else "api"
        state = run.state.name if run.state else "?"
        lines.append(f"  +{offset:6.1f}s  {run.name[:58]:<58} {state:<10} {took}  by {by}")
    lines.append(f"  each run: {ui_url}/runs/flow-run/<id>  (all runs: {ui_url}/runs)")
    return lines
