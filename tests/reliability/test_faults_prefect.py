"""Fault injection on Prefect: the worker (or its whole host) lost mid-deploy and mid-analysis.

Real SeaweedFS, the session's real Prefect server, real process workers running the
deployments of prefect.yaml, the real KServe model server. Two faults:
- "worker": the worker's process group is SIGKILLed. The process worker runs each flow run in a
  session of its own, so the run's process survives; it loses its stdout pipe and crashes
  (Prefect reports Crashed) at its next console log line.
- "host": the worker and the flow run's process are SIGKILLed, as when a node dies. Nothing is
  left to report, so Prefect keeps the run Running, holding its deployment's concurrency slot,
  until the silent-run automation (deployments/setup.py) marks it Crashed.
After each, the registry must be consistent and re-running the interrupted flow must converge.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.events import emit_event

from deployments.setup import LOCAL_POOL, rollback_automation, setup, silent_run_automation
from flows.deploy import deploy
from infra.model_server import ModelServer, start_model_server
from infra.prefect_server import prefect_session
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import ServeOptions
from tasks.events import model_resource
from tasks.modelserver.client import LocalServingTarget
from tasks.registry.versions import ModelRegistry
from tasks.release.acts import promote
from tasks.s3 import connect
from tasks.settings import Settings
from tests.support.keys import TEST_KEY
from tests.support.models import HouseModels, register
from tests.support.prefect_faults import (
    alive,
    automations,
    deployed,
    finished,
    frozen,
    kill_worker,
    moves,
    private_pool,
    read_run,
    registrations,
    restart,
    running_worker,
    runs_of,
    states_of,
    task_state,
    upcoming_drift_checks,
    verified_aliases,
    wait_until,
)
from tests.support.stack import events_named

pytestmark = pytest.mark.integration

SILENT_S = 35  # the silent-run automation's window in these cases (production: 3 heartbeats)
START_S = 240  # a worker's first flow run on a busy two-core machine can take a minute


@dataclass
class Served:
    registry: ModelRegistry
    server: ModelServer
    target: LocalServingTarget
    good: tuple[int, int]
    bad: int


@pytest.fixture
def served(
    flow_env: Settings, s3_server, house_models: HouseModels, monkeypatch
) -> Iterator[Served]:
    """Three registered versions (two good, one pricing every house 60% too high), a model server."""
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.store.ensure_bucket()
    good = (register(registry, house_models, 41, 1.0), register(registry, house_models, 42, 1.0))
    bad = register(registry, house_models, 43, 1.6)
    server = start_model_server(
        {**s3_server.env(), "MLOPS_MODEL_NAME": flow_env.model_name},
        flow_env.model_name,
        options=ServeOptions(log_flush_seconds=0.5),
    )
    monkeypatch.setenv("MLOPS_SERVING_URL", server.url)
    monkeypatch.setenv("MLOPS_CANARY_POLL_S", "0.5")
    try:
        target = LocalServingTarget(server.url, flow_env.model_name)
        yield Served(registry, server, target, good, bad)
    finally:
        server.stop()


def serving_matches(aliases: dict[str, int], served: Served) -> str:
    """Serving against the aliases: "agree", or "serving ahead" in the one documented
    intermediate state (release acts change serving first, then the aliases), or "DIVERGED"."""
    state = served.target.state()
    if state.stable_version != aliases.get("champion"):
        return "DIVERGED"
    if state.canary_version == aliases.get("canary"):
        return "agree"
    return "serving ahead" if aliases.get("canary") is None else "DIVERGED"


@dataclass
class Interruption:
    """What a kill left behind, seen 3 s later, before anything runs again."""

    run_id: UUID
    killed_at: float
    state: str  # of the interrupted run
    processes_left: int
    aliases: dict[str, int]
    serving: str  # serving_matches(aliases)

    def wait_for_end(self) -> tuple[FlowRun, float]:
        """The interrupted run once it ended, and how long after the kill that was."""
        run = wait_until("the interrupted run to end", lambda: finished(self.run_id), START_S)
        return run, time.monotonic() - self.killed_at


def observe_interruption(run_id: UUID, pids: list[int], served: Served) -> Interruption:
    """Right after a kill: wait 3 s, then look at the run, its processes, aliases and serving."""
    killed_at = time.monotonic()
    time.sleep(3.0)
    aliases = verified_aliases(served.registry)
    return Interruption(
        run_id,
        killed_at,
        read_run(run_id).state.name,
        len(alive(pids)),
        aliases,
        serving_matches(aliases, served),
    )


def fault(lost: str) -> str:
    return "SIGKILL of the worker's process group" + (
        " and of the flow-run process" if lost == "host" else ""
    )


@pytest.mark.parametrize("lost", ["worker", "host"])
def test_deploy_interrupted_then_rerun_converges(
    lost: str, served: Served, flow_env: Settings, tmp_path: Path, reliability
) -> None:
    registry, (v1, v2) = served.registry, served.good
    deploy(version=v1, reason="first")  # in-process: v1 is champion and served
    pool, parameters = private_pool(), {"version": v2, "model_name": flow_env.model_name}
    with deployed(["deploy"], pool), automations(silent_run_automation(SILENT_S)):
        with running_worker(pool, tmp_path / "first") as first:
            with frozen(served.server.process):  # the canary's PUT /routing hangs
                run = run_deployment("deploy/deploy", parameters=parameters, timeout=0)
                wait_until("deploy inside roll_out", lambda: task_state(run.id, "roll_out") == "RUNNING", START_S)  # fmt: skip
                time.sleep(1.0)
                pids = kill_worker(first, run.id, host_lost=lost == "host")
            cut = observe_interruption(run.id, pids, served)  # the server has thawed
        with running_worker(pool, tmp_path / "second"):
            rerun = run_deployment("deploy/deploy", parameters=parameters, timeout=0)
            interrupted, ended_after = cut.wait_for_end()
            rerun = wait_until("the re-run to end", lambda: finished(rerun.id), START_S)
        path = " → ".join(states_of(rerun.id))
    aliases, state, history = verified_aliases(registry), served.target.state(), moves(registry)
    announced = [e.payload["version"] for e in events_named("mlops.canary.started", registry.name)]

    assert cut.serving in {"agree", "serving ahead"}, cut
    assert interrupted.state.is_crashed() and rerun.state.is_completed(), (interrupted, rerun)
    assert aliases == {"champion": v1, "canary": v2}
    assert (state.stable_version, state.canary_version, state.canary_percent) == (v1, v2, 10)
    assert history == [("champion", None, v1), ("canary", None, v2)]
    assert announced == [v2]
    if lost == "host":  # nothing is left to say the run is gone
        assert (cut.state, cut.processes_left) == ("Running", 0)
    reliability(
        "fault injection",
        f"{'host' if lost == 'host' else 'Prefect worker'} lost mid `deploy`",
        done=f"{fault(lost)} while the deploy of v{v2} as canary waited, inside roll_out, on a "
        "frozen (SIGSTOP) model server; the server thawed, a new worker started, and the same "
        "deploy was run again through the deployment",
        expected="the interrupted run ends Crashed; every alias points at a verified version and "
        "serving agrees (or is ahead: canary served, alias not yet moved); the re-run completes "
        f"with champion v{v1} + canary v{v2} served at 10%, one canary move, one announcement",
        observed=f"3 s after the kill: run {cut.state}, {cut.processes_left} flow-run process "
        f"left, aliases {cut.aliases}, serving {cut.serving}; the run ended "
        f"{interrupted.state.name} ({interrupted.state.message!r}) {ended_after:.0f}s after the "
        f"kill; the re-run went {path}; then aliases {aliases}, served stable "
        f"v{state.stable_version} + canary v{state.canary_version} at {state.canary_percent}%; "
        f"history {history}; canary.started announced for {announced}",
    )


@pytest.mark.parametrize("lost", ["worker", "host"])
def test_canary_analysis_interrupted_then_rerun_converges(
    lost: str, served: Served, flow_env: Settings, tmp_path: Path, reliability
) -> None:
    registry, (v1, v2), bad = served.registry, served.good, served.bad
    deploy(version=v1, reason="first")
    deploy(version=v2, reason="better")
    promote.fn(registry, served.target, "set-up: v2 proved itself")  # champion v2, previous v1
    before = moves(registry)
    pool, model = private_pool(), flow_env.model_name
    with (
        deployed(["canary-analysis", "rollback"], pool) as ids,
        automations(rollback_automation(), silent_run_automation(SILENT_S)),
    ):
        with running_worker(pool, tmp_path / "first") as first:
            # The bad canary is announced; the deployment's trigger starts the analysis, which
            # waits for evidence that no traffic brings.
            deploy(version=bad, percent=30, reason="slipped past the gate")
            run = wait_until("the triggered analysis", lambda: runs_of(ids["canary-analysis"]), 60)[0]  # fmt: skip
            wait_until("the analysis watching", lambda: task_state(run.id, "watch_canary") == "RUNNING", START_S)  # fmt: skip
            pids = kill_worker(first, run.id, host_lost=lost == "host")
            cut = observe_interruption(run.id, pids, served)
        with running_worker(pool, tmp_path / "second"):
            interrupted, ended_after = cut.wait_for_end()
            wait_until("the automation's rollback", lambda: _all_done(ids["rollback"], 1), START_S)  # fmt: skip
            rolled_after = time.monotonic() - cut.killed_at
            rerun = run_deployment(
                "canary-analysis/canary-analysis",
                parameters={"model_name": model, "max_wait_s": 30},
                timeout=0,
            )
            rerun = wait_until("the re-run to end", lambda: finished(rerun.id), START_S)
            # A failed analysis fires the rollback automation again: let that run end too.
            again = 1 + (rerun.state.is_failed() or rerun.state.is_crashed())
            wait_until("the rollback runs", lambda: _all_done(ids["rollback"], again), START_S)
        rollbacks = [r.state.name for r in runs_of(ids["rollback"])]
        rolled_models = {r.parameters.get("model_name") for r in runs_of(ids["rollback"])}
    aliases, state = verified_aliases(registry), served.target.state()
    assert rolled_models == {model}, rolled_models  # the automation names the analysed model
    history = moves(registry)[len(before) :]

    assert cut.serving == "agree" and cut.aliases == {"champion": v2, "previous": v1, "canary": bad}
    assert interrupted.state.is_crashed(), interrupted.state
    assert aliases == {"champion": v2, "previous": v1}
    assert (state.stable_version, state.canary_version) == (v2, None)
    assert history == [("canary", None, bad), ("canary", bad, None)], history
    if lost == "host":
        assert (cut.state, cut.processes_left) == ("Running", 0)
    reliability(
        "fault injection",
        f"{'host' if lost == 'host' else 'Prefect worker'} lost mid `canary-analysis`",
        done=f"champion v{v2} (previous v{v1}); a worse v{bad} put on canary at 30%, its analysis "
        f"started by the deployment trigger; {fault(lost)} while it watched; a new worker; then "
        "the analysis run again through the deployment",
        expected="the analysis ends Crashed; the rollback automation takes the canary out; the "
        "re-run has nothing to judge and moves nothing: exactly one canary rollback in the "
        f"history, champion v{v2} untouched and served alone",
        observed=f"3 s after the kill: run {cut.state}, canary still served and aliased "
        f"({cut.serving}); the run ended {interrupted.state.name} {ended_after:.0f}s after the "
        f"kill; canary rolled back {rolled_after:.0f}s after it; the re-run ended "
        f"{rerun.state.name} ({rerun.state.message!r}); rollback runs {rollbacks}; aliases "
        f"{aliases}; served stable v{state.stable_version}, canary {state.canary_version}; alias "
        f"moves since set-up {history}",
    )


def _all_done(deployment_id: UUID, count: int) -> bool:
    runs = runs_of(deployment_id)
    return len(runs) >= count and all(r.state and r.state.is_final() for r in runs)


def test_prefect_server_restart_keeps_the_loop_registered_and_firing(
    flow_env: Settings, s3_server, tmp_path: Path, monkeypatch, reliability
) -> None:
    """A Prefect server of its own (the session's one serves every other test): restarted twice
    on the same port and SQLite file, with a worker left running across both restarts."""
    data = tmp_path / "houses.csv"
    generate_house_prices(1500, seed=21).to_csv(data, index=False)
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.store.ensure_bucket()
    serving = start_model_server(
        {**s3_server.env(), "MLOPS_MODEL_NAME": flow_env.model_name}, flow_env.model_name
    )
    monkeypatch.setenv("MLOPS_SERVING_URL", serving.url)
    try:
        with prefect_session(tmp_path / "prefect") as server:
            setup()
            before = registrations()
            scheduled = wait_until("drift-daily's runs to be scheduled", upcoming_drift_checks, 60)
            with running_worker(LOCAL_POOL, tmp_path / "worker") as worker:
                graceful = restart(server, signal.SIGTERM)
                after_term = registrations()
                brutal = restart(server, signal.SIGKILL)
                after_kill, still_scheduled = registrations(), upcoming_drift_checks()
                worker_alive = worker.process.poll() is None
                fired = time.monotonic()
                emit_event(
                    event="mlops.drift.detected",
                    resource=model_resource(flow_env.model_name),
                    payload={"summary": "after a restart", "data_uri": str(data)},
                )
                wait_until("v1 served as champion", lambda: _champion_served(registry, serving), START_S, every=1.0)  # fmt: skip
                chain = time.monotonic() - fired
                runs = {name: [r.state.name for r in runs_of(d)] for name, d in _ids().items()}
    finally:
        serving.stop()

    assert before["automations"] and len(before["deployments"]) == 7, before
    assert after_term == before and after_kill == before
    assert still_scheduled >= 1 and worker_alive
    assert runs["retrain"] == ["Completed"] and runs["deploy"] == ["Completed"], runs
    assert registry.aliases() == {"champion": 1}
    kept = (
        f"{len(before['deployments'])} deployments (pools, limits, drift-daily "
        f"{before['deployments']['drift-daily'][3]}), {len(before['automations'])} automations, "
        f"pools {before['pools']}"
    )
    for how, seconds, after in (("SIGTERM", graceful, after_term), ("SIGKILL", brutal, after_kill)):
        reliability(
            "fault injection",
            f"Prefect server restarted ({how})",
            done=f"a private Prefect server holding the whole loop (`deployments.setup`); {how} to "
            "its process group, `prefect server start` again on the same port and SQLite file; "
            "a process worker left running throughout",
            expected="every deployment with its pool, concurrency limit and schedule, every "
            "automation and pool still there, unchanged; upcoming scheduled drift checks kept",
            observed=f"back in {seconds:.1f}s; {kept}: {'identical' if after == before else after}; "
            f"{scheduled} upcoming drift-daily runs before the restarts, {still_scheduled} after",
        )
    reliability(
        "fault injection",
        "events after a Prefect server SIGKILL and restart",
        done="right after the SIGKILL restart, one `mlops.drift.detected` event for a new model",
        expected="the worker that lived through both restarts still polls; the drift trigger "
        "starts retrain, its registration event triggers deploy, v1 ends up served as champion",
        observed=f"worker {'alive' if worker_alive else 'dead'}; retrain {runs['retrain']}, "
        f"deploy {runs['deploy']}; champion v{registry.alias('champion')} served "
        f"{chain:.0f}s after the event",
    )


def _ids() -> dict[str, UUID]:
    with get_client(sync_client=True) as client:
        return {d.name: d.id for d in client.read_deployments() if d.name in {"retrain", "deploy"}}


def _champion_served(registry: ModelRegistry, serving: ModelServer) -> bool:
    state = LocalServingTarget(serving.url, registry.name).state()
    return registry.alias("champion") == 1 and state.stable_version == 1
