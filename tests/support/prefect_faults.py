"""Helpers for the Prefect fault-injection and concurrency cases: register, run, kill, restart,
observe.

Deployments are the real ones of prefect.yaml (entrypoint, parameters, triggers, concurrency
limit), registered with `prefect deploy --name ...` into a private work pool, so that the worker
a case starts runs its flow runs only, and nothing a case leaves behind is picked up later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from prefect import get_client
from prefect.automations import Automation
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun

from deployments.setup import ensure_automation
from infra.prefect_server import PrefectServer, start_prefect_server
from infra.prefect_worker import PrefectWorker, start_worker
from tasks.registry.versions import ModelRegistry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Flow runs of these cases heartbeat every 30 s (Prefect's minimum; its default is 180 s).
HEARTBEAT_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T], timeout: float, every: float = 0.3) -> T:
    """Poll `probe` until it returns something truthy; fail the case naming what never came."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def private_pool() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


@contextmanager
def deployed(names: list[str], pool: str) -> Iterator[dict[str, UUID]]:
    """Deploy these prefect.yaml deployments into `pool`; yield {deployment name: id}.

    Afterwards their flow runs, trigger automations, the deployments and the pool are deleted,
    so no event of a later test starts anything.
    """
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    ids: dict[str, UUID] = {}
    try:
        prefect = Path(sys.executable).with_name("prefect")
        for name in names:  # one at a time: with several names, `prefect deploy` ignores --pool
            result = subprocess.run(
                [str(prefect), "--no-prompt", "deploy", "--name", name, "--pool", pool],
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                env=os.environ.copy(),
            )
            assert result.returncode == 0, f"prefect deploy failed:\n{result.stdout[-2000:]}"
        with get_client(sync_client=True) as client:
            ids = {d.name: d.id for d in client.read_deployments() if d.work_pool_name == pool}
        assert set(ids) == set(names), f"deployed {sorted(ids)}, wanted {sorted(names)}"
        yield ids
    finally:
        _forget(ids, pool)


def _forget(ids: dict[str, UUID], pool: str) -> None:
    with get_client(sync_client=True) as client:
        if ids:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(ids.values())))
            )
            for run in runs:
                client.delete_flow_run(run.id)
        for automation in client.read_automations():
            if any(automation.name.startswith(f"{name}__") for name in ids):
                client.delete_automation(automation.id)
        for deployment_id in ids.values():
            client.delete_deployment(deployment_id)
        client.delete_work_pool(pool)


@contextmanager
def automations(*wanted: Automation) -> Iterator[None]:
    """Create (or update, by name) these automations; delete them afterwards."""
    for automation in wanted:
        ensure_automation(automation)
    try:
        yield
    finally:
        with get_client(sync_client=True) as client:
            for automation in client.read_automations():
                if automation.name in {a.name for a in wanted}:
                    client.delete_automation(automation.id)


@contextmanager
def frozen(process: subprocess.Popen) -> Iterator[None]:
    """SIGSTOP a server: the kernel still accepts connections, calls to it hang, until SIGCONT."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def flow_run_processes(run_id: UUID) -> list[int]:
    """PIDs of the processes executing a flow run (its engine has PREFECT__FLOW_RUN_ID set)."""
    marker = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            found.append(int(entry.name))
    return found


@contextmanager
def running_worker(pool: str, log_dir: Path) -> Iterator[PrefectWorker]:
    """A process worker on `pool` whose flow runs heartbeat every 30 s; stopped afterwards
    (a no-op when the case has killed it)."""
    worker = start_worker(pool, log_dir, HEARTBEAT_ENV)
    try:
        yield worker
    finally:
        worker.stop()


def kill_worker(worker: PrefectWorker, run_id: UUID, host_lost: bool) -> list[int]:
    """SIGKILL the worker's process group; with `host_lost`, the flow run's processes as well.

    The process worker starts each flow run in a session of its own, so killing the worker's
    group leaves the run's process alive: a lost host kills both. Returns the run's PIDs.
    """
    pids = flow_run_processes(run_id)
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    if host_lost:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    return pids


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def read_run(run_id: UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def states_of(run_id: UUID) -> list[str]:
    """The names of every state a flow run went through, in order."""
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(run_id)
    return [state.name for state in sorted(states, key=lambda state: state.timestamp)]


def task_state(run_id: UUID, task: str) -> str | None:
    """The state type of the flow run's task `task` (e.g. "RUNNING"), None before it starts."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    states = [t.state.type.value for t in runs if t.name.startswith(task) and t.state]
    return states[-1] if states else None


def runs_of(deployment_id: UUID) -> list[FlowRun]:
    """Every flow run of a deployment, oldest first."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    return sorted(runs, key=lambda run: run.created)


def finished(run_id: UUID) -> FlowRun | None:
    run = read_run(run_id)
    return run if run.state and run.state.is_final() else None


def verified_aliases(registry: ModelRegistry) -> dict[str, int]:
    """Every alias, after its version's model file verified against its manifest."""
    aliases = registry.aliases()
    for version in aliases.values():
        registry.load_bytes(version)  # raises VersionNotFound / IntegrityError
    return aliases


def moves(registry: ModelRegistry) -> list[tuple[str, int | None, int | None]]:
    return [(m.alias, m.from_version, m.to_version) for m in registry.history()]


def restart(server: PrefectServer, how: signal.Signals) -> float:
    """Stop the server (SIGTERM to drain, or SIGKILL) and start it again on the same port and
    SQLite file; `server` then points at the new process. Returns the seconds it took."""
    started = time.monotonic()
    if how == signal.SIGKILL:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
    else:
        server.stop()
    port = int(server.url.rsplit(":", 1)[1])
    server.process = start_prefect_server(server.home, port=port).process
    return time.monotonic() - started


def registrations() -> dict[str, object]:
    """What must outlive a restart: deployments (pool, limit, schedule), automations, pools."""
    with get_client(sync_client=True) as client:
        deployments = {
            d.name: (
                d.work_pool_name,
                d.global_concurrency_limit.limit if d.global_concurrency_limit else None,
                d.concurrency_options.collision_strategy.value if d.concurrency_options else None,
                [(s.schedule.cron, s.schedule.timezone, s.active) for s in d.schedules],
            )
            for d in client.read_deployments()
        }
        automations = {a.name: a.enabled for a in client.read_automations()}
        pools = sorted(p.name for p in client.read_work_pools())
    return {"deployments": deployments, "automations": automations, "pools": pools}


def upcoming_drift_checks() -> int:
    with get_client(sync_client=True) as client:
        daily = client.read_deployment_by_name("drift-check/drift-daily")
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[daily.id]))
        )
    return sum(1 for run in runs if run.state and run.state.is_scheduled())
