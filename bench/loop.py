"""Benchmark: how fast the loop reacts to its events, and what Prefect costs per flow run.

Everything runs on the real local stack (infra/local_stack.py: SeaweedFS, a Prefect server, the
local KServe model server, every deployment and automation from prefect.yaml, a process worker
polling every 0.25 s). After a first model is trained and served, each figure is measured `--runs`
times; timestamps come from the Prefect API (`created`, state history, `start_time`), so polling
here only decides when we look, not what we measure.

1. a `mlops.drift.detected` event (data: the labelled batch the champion was trained on, so the
   retrained model is the same and the chain ends in a promotion) -> the retrain flow run is
   created by the automation, and -> it starts (Running);
2. a GOOD model (the champion's bytes, registered again) announced with
   `announce_registration` -> the canary is live (GET /mlops/v1/routing, polled every 50 ms),
   and -> the canary-analysis run starts;
3. Prefect's cost per flow run: `ci-checks` through `run_deployment` (wall) against its own
   `total_run_time`, split by the state history; a no-op @flow called in-process against a plain
   function call.

Between runs every chain is left to settle: simulated users (infra/traffic.py) are started once
a canary is live so that the analysis can decide, and the next run begins only when no flow run
is active and no canary is served. The users are off while a latency is being measured.

    python -m bench.loop --runs 5 --json loop.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

import httpx

if TYPE_CHECKING:
    import pandas as pd
    from prefect.client.schemas.objects import FlowRun

    from flows.scenario.world import World
    from infra.traffic import Traffic
    from tasks.registry.versions import Manifest

T = TypeVar("T")
ACTIVE = {"SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED"}


@dataclass
class Bench:
    """The running loop and the figures collected on it."""

    world: World
    args: argparse.Namespace
    deployments: dict[UUID, str]  # deployment id -> name
    batch: str  # s3:// URI of the labelled batch the champion was trained on
    users: pd.DataFrame  # rows the simulated users ask about
    started: float = field(default_factory=time.monotonic)
    samples: dict[str, list[float]] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    last_drift: float | None = None  # when figure 1 last sent a drift event (monotonic)

    def add(self, key: str, seconds: float | None) -> None:
        if seconds is not None:
            self.samples.setdefault(key, []).append(seconds)

    def time_left(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.started)


def now() -> datetime:
    return datetime.now(UTC)


def secs(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float) -> T:
    """Call `probe` until it returns something; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout:.0f}s")
        time.sleep(every)
    return found


def read_runs() -> list[FlowRun]:
    """The 200 (the API's cap) latest runs due within a minute: future daily checks left out."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterExpectedStartTime
    from prefect.client.schemas.sorting import FlowRunSort

    due = FlowRunFilterExpectedStartTime(before_=now() + timedelta(minutes=1))
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(expected_start_time=due),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )


def runs_since(bench: Bench, deployment: str | None, since: datetime) -> list[FlowRun]:
    """Flow runs created after `since` (of one deployment), oldest first."""
    runs = [r for r in read_runs() if r.created and r.created >= since]
    if deployment is not None:
        runs = [r for r in runs if bench.deployments.get(r.deployment_id) == deployment]
    return sorted(runs, key=lambda r: r.created)


def started_run(bench: Bench, deployment: str, since: datetime) -> FlowRun | None:
    return next((r for r in runs_since(bench, deployment, since) if r.start_time), None)


def state_times(run_id: UUID) -> dict[str, datetime]:
    """When the run first entered each state type (SCHEDULED, PENDING, RUNNING, COMPLETED...)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(run_id)
    first: dict[str, datetime] = {}
    for state in sorted(states, key=lambda s: s.timestamp):
        first.setdefault(state.type.value, state.timestamp)
    return first


def is_live(run: FlowRun, soon: datetime) -> bool:
    """Active, or scheduled to start within a minute (the daily drift check is not)."""
    if run.state_type is None or run.state_type.value not in ACTIVE:
        return False
    return run.state_type.value != "SCHEDULED" or (run.expected_start_time or soon) < soon


def chain_done(bench: Bench, since: datetime, expect: set[str], canary: int | None) -> bool:
    """Nothing runs, no canary is served, and each expected stage (a completed retrain expects
    a deploy) has a run."""
    runs = read_runs()
    soon = now() + timedelta(minutes=1)
    if canary is not None or any(is_live(r, soon) for r in runs):
        return False
    mine = [
        (bench.deployments.get(r.deployment_id), r)
        for r in runs
        if r.created and r.created >= since
    ]
    if any(name == "retrain" and r.state.is_completed() for name, r in mine):
        expect = expect | {"deploy"}
    return expect <= {name for name, _ in mine}


def start_users(bench: Bench) -> Traffic:
    from infra.traffic import Traffic

    w = bench.world
    return Traffic(w.serving_url, w.model, bench.users, w.target, w.store).__enter__()


def settle(bench: Bench, since: datetime, expect: set[str]) -> str:
    """Wait for the chain started at `since` to end (users on while a canary is live)."""
    users, deadline = None, time.monotonic() + bench.args.timeout_s
    try:
        while not chain_done(
            bench, since, expect, canary := bench.world.served()["canary_version"]
        ):
            if canary is not None and users is None:
                users = start_users(bench)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the chain did not settle in {bench.args.timeout_s:.0f}s")
            time.sleep(0.5)
    finally:
        if users is not None:
            users.stop()
    chain = runs_since(bench, None, since)
    return " → ".join(f"{bench.deployments.get(r.deployment_id)} {r.state_name}" for r in chain)


def worker_phases(bench: Bench, prefix: str, run: FlowRun) -> dict[str, datetime]:
    """Note created→Pending (the worker's poll) and Pending→Running (subprocess, imports)."""
    times = state_times(run.id)
    bench.add(f"{prefix} created→Pending", secs(run.created, times.get("PENDING")))
    bench.add(f"{prefix} Pending→Running", secs(times.get("PENDING"), times.get("RUNNING")))
    return times


def drift_window_s() -> float:
    """The retrain deployment's drift trigger window (prefect.yaml `within`), in seconds."""
    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "prefect.yaml").read_text())
    (retrain,) = [d for d in spec["deployments"] if d["name"] == "retrain"]
    return float(retrain["triggers"][0].get("within", 0))


def drift_once(bench: Bench, index: int) -> dict:
    """Figure 1: a drift event -> the retrain run created and started; then let it settle."""
    from prefect.events import emit_event

    from tasks.events import model_resource

    if bench.last_drift is not None:  # the trigger fires once per model per window: wait it out
        window = drift_window_s()
        wait = window + 1 - (time.monotonic() - bench.last_drift)
        if wait > 0:
            print(f"  (waiting {wait:.0f}s: the drift trigger fires once per {window:.0f}s)")
            time.sleep(wait)
    bench.last_drift = time.monotonic()
    since = now()
    emit_event(
        event="mlops.drift.detected",
        resource=model_resource(bench.world.model),
        payload={"summary": f"bench drift {index}", "data_uri": bench.batch},
    )
    probe = lambda: started_run(bench, "retrain", since)  # noqa: E731
    run = wait_for("retrain run", probe, bench.args.timeout_s, 0.25)
    created, started = secs(since, run.created), secs(since, run.start_time)
    bench.add("1 drift→retrain created", created)
    bench.add("1 drift→retrain started", started)
    worker_phases(bench, "1 retrain", run)
    settled = time.monotonic()
    chain = settle(bench, since, set())
    print(f"  drift {index}: retrain created +{created:.2f}s, Running +{started:.2f}s;"
          f" {chain} (settled {time.monotonic() - settled:.0f}s later)", flush=True)  # fmt: skip
    return {"figure": 1, "run": index, "created_s": created, "started_s": started, "chain": chain}


def register_good(bench: Bench, index: int) -> Manifest:
    """The champion's own bytes as a new version: a canary that deserves its promotion."""
    from tasks.registry.versions import ModelSpec

    registry = bench.world.registry
    champion = registry.alias("champion")
    manifest, model = registry.load(champion)
    fields = manifest.model_dump(include=set(ModelSpec.model_fields))
    spec = ModelSpec(**fields | {"parent": champion, "reason": f"bench registration {index}"})
    return registry.register(model, spec)


def canary_live(url: str, version: int) -> Callable[[], datetime | None]:
    def probe() -> datetime | None:
        routing = httpx.get(f"{url}/mlops/v1/routing", timeout=5).json()["routing"]
        live = routing["canary_version"] == version and routing["canary_percent"] > 0
        return now() if live else None

    return probe


def registration_once(bench: Bench, index: int) -> dict:
    """Figure 2: announce a registration -> canary live, canary-analysis created and started."""
    from tasks.events import announce_registration

    manifest = register_good(bench, index)
    since = now()
    announce_registration(manifest, f"bench registration {index}")
    probe = canary_live(bench.world.serving_url, manifest.version)
    live = secs(since, wait_for("canary", probe, bench.args.timeout_s, 0.05))
    bench.add("2 registered→canary live", live)
    probe = lambda: started_run(bench, "canary-analysis", since)  # noqa: E731
    analysis = wait_for("canary-analysis run", probe, bench.args.timeout_s, 0.25)
    bench.add("2 registered→analysis created", secs(since, analysis.created))
    bench.add("2 registered→analysis started", secs(since, analysis.start_time))
    deploy = runs_since(bench, "deploy", since)[0]
    bench.add("2 registered→deploy created", secs(since, deploy.created))
    bench.add("2 registered→deploy started", secs(since, deploy.start_time))
    worker_phases(bench, "2 analysis", analysis)
    chain = settle(bench, since, {"deploy", "canary-analysis"})
    print(f"  registration {index} (v{manifest.version}): canary live +{live:.2f}s, deploy Running"
          f" +{secs(since, deploy.start_time):.2f}s, analysis Running"
          f" +{secs(since, analysis.start_time):.2f}s; {chain}", flush=True)  # fmt: skip
    return {"figure": 2, "run": index, "version": manifest.version, "live_s": live, "chain": chain}


def deployment_once(bench: Bench, index: int) -> dict:
    """Figure 3a: ci-checks through run_deployment, wall against the run's own run time."""
    from prefect import get_client
    from prefect.deployments import run_deployment

    called, began = now(), time.perf_counter()
    run = run_deployment("ci-checks/ci-checks", parameters={"data": bench.batch},
                         timeout=bench.args.timeout_s, poll_interval=bench.args.poll_s)  # fmt: skip
    wall, returned = time.perf_counter() - began, now()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run.id)
    own = run.total_run_time.total_seconds()
    times = worker_phases(bench, "3a ci-checks", run)
    bench.add("3a ci-checks wall", wall)
    bench.add("3a ci-checks total_run_time", own)
    bench.add("3a ci-checks overhead", wall - own)
    bench.add("3a ci-checks call→created", secs(called, run.created))
    bench.add("3a ci-checks end→returned", secs(run.end_time or times.get("COMPLETED"), returned))
    print(f"  ci-checks {index}: {run.state_name}, wall {wall:.2f}s, total_run_time {own:.2f}s,"
          f" overhead {wall - own:.2f}s", flush=True)  # fmt: skip
    return {"figure": 3, "run": index, "wall_s": wall, "total_run_time_s": own}


def noop_flow() -> Callable[[], None]:
    """A flow that does nothing, built on call (no Prefect import at module import)."""
    from prefect import flow

    @flow(name="bench-noop", log_prints=False)
    def noop() -> None:
        return None

    return noop


def plain() -> None:
    return None


def timed_noop(bench: Bench, noop: Callable[..., object]) -> None:
    """One in-process no-op flow run, split at the Completed state's timestamp (API)."""
    from prefect import get_client

    called, began = now(), time.perf_counter()
    state = noop(return_state=True)
    flow_s, returned = time.perf_counter() - began, now()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    began = time.perf_counter()
    plain()
    plain_s = time.perf_counter() - began
    bench.add("3b no-op @flow in-process", flow_s)
    bench.add("3b no-op call→Completed", secs(called, run.end_time))
    bench.add("3b no-op Completed→returned", secs(run.end_time, returned))
    bench.add("3b plain function call", plain_s)


def in_process(bench: Bench) -> dict:
    """Figure 3b: the no-op flow and a plain call, in this process; the first flow call apart."""
    noop = noop_flow()
    began = time.perf_counter()
    noop()
    cold = time.perf_counter() - began
    for _ in range(bench.args.runs):
        timed_noop(bench, noop)
    print(f"  no-op flow: first call {cold:.3f}s (then {bench.args.runs} timed)", flush=True)
    return {"figure": "3b", "first_call_s": cold}


IMPORTS = (
    "import time; t0 = time.perf_counter(); import prefect.flow_engine; t1 = time.perf_counter();"
    " import flows.retrain, flows.deploy, flows.canary_analysis, flows.ci_checks;"
    " print(t1 - t0, time.perf_counter() - t1)"
)


def import_cost(bench: Bench) -> dict:
    """Figure 3c: what a flow-run subprocess pays before its flow can run: a fresh interpreter,
    Prefect's engine, the flow modules (pandas, scikit-learn, scipy, boto3...)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    for _ in range(bench.args.runs):
        began = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", IMPORTS], cwd=root, capture_output=True,
                             text=True, check=True, timeout=120).stdout  # fmt: skip
        engine_s, flows_s = (float(x) for x in out.split())
        bench.add("3c subprocess total", time.perf_counter() - began)
        bench.add("3c import prefect.flow_engine", engine_s)
        bench.add("3c import the flow modules", flows_s)
    return {"figure": "3c"}


def first_model(bench: Bench) -> None:
    """Train and serve v1 through the deployments, as the scenario does."""
    from prefect.deployments import run_deployment

    since = now()
    run = run_deployment("retrain/retrain", parameters={"data": bench.batch, "reason": "bench v1"},
                         timeout=bench.args.timeout_s, poll_interval=1)  # fmt: skip
    if not run.state or not run.state.is_completed():
        raise RuntimeError(f"the first retrain ended {run.state.name if run.state else '?'}")
    chain = settle(bench, since, {"deploy"})
    print(f"first model: {chain}; routing {bench.world.served()}", flush=True)


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default); with one value, that value."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def figures(samples: dict[str, list[float]]) -> dict[str, dict]:
    return {
        key: {"n": len(v), "median": statistics.median(v), "p95": quantile(v, 0.95),
              "max": max(v), "values": v}
        for key, v in samples.items()
    }  # fmt: skip


MEANING = {
    "1 drift→retrain created": "event in, automation fired, run created (server)",
    "1 drift→retrain started": "+ worker poll, subprocess start, imports",
    "1 retrain created→Pending": "worker poll (0.25 s) + claim",
    "1 retrain Pending→Running": "subprocess start + imports + flow load",
    "2 registered→deploy created": "event in, automation fired",
    "2 registered→deploy started": "+ worker poll, subprocess, imports",
    "2 registered→canary live": "+ deploy flow: verify bytes, load, probe, route",
    "2 registered→analysis created": "+ deploy ends, canary.started event, automation",
    "2 registered→analysis started": "+ worker poll, subprocess, imports",
    "2 analysis created→Pending": "worker poll (0.25 s) + claim",
    "2 analysis Pending→Running": "subprocess start + imports + flow load",
    "3a ci-checks wall": "run_deployment call to return",
    "3a ci-checks total_run_time": "the flow's own Running time",
    "3a ci-checks overhead": "wall − total_run_time",
    "3a ci-checks call→created": "client + POST /deployments/{id}/create_flow_run",
    "3a ci-checks created→Pending": "worker poll (0.25 s) + claim",
    "3a ci-checks Pending→Running": "subprocess start + imports + flow load",
    "3a ci-checks end→returned": "state to Completed → run_deployment's next poll",
    "3b no-op @flow in-process": "whole call",
    "3b no-op call→Completed": "create run, Running, Completed via API",
    "3b no-op Completed→returned": "engine exit: joins its heartbeat thread (sleeps 1 s steps)",
    "3b plain function call": "for scale",
    "3c subprocess total": "python -c: interpreter + the two imports below",
    "3c import prefect.flow_engine": "Prefect's engine, in a fresh process",
    "3c import the flow modules": "flows.* → tasks.* → pandas, sklearn, scipy, boto3",
}


def print_table(table: dict[str, dict]) -> None:
    print(f"\n{'figure (seconds)':<34}{'n':>3}{'median':>9}{'p95':>9}{'max':>9}  includes")
    for key in [k for k in MEANING if k in table]:
        f = table[key]
        fmt = "{:9.6f}" if key.startswith("3b plain") else "{:9.3f}"
        cells = "".join(fmt.format(f[k]) for k in ("median", "p95", "max"))
        print(f"{key:<34}{f['n']:>3}{cells}  {MEANING.get(key, '')}")


def summary_lines(table: dict[str, dict]) -> list[str]:
    def med(key: str) -> float:
        return table.get(key, {}).get("median", float("nan"))

    return [
        f"1. drift event → retrain created in {med('1 drift→retrain created'):.2f}s, started in"
        f" {med('1 drift→retrain started'):.2f}s (median); Pending→Running"
        f" {med('1 retrain Pending→Running'):.2f}s of it",
        f"2. registration → canary live in {med('2 registered→canary live'):.2f}s, canary-analysis"
        f" started in {med('2 registered→analysis started'):.2f}s (median)",
        f"3. a deployment run of ci-checks costs {med('3a ci-checks overhead'):.2f}s over its own"
        f" {med('3a ci-checks total_run_time'):.2f}s, {med('3a ci-checks Pending→Running'):.2f}s of"
        f" it subprocess start (imports alone {med('3c subprocess total'):.2f}s); an in-process"
        f" no-op flow {med('3b no-op @flow in-process') * 1000:.0f} ms"
        f" ({med('3b no-op Completed→returned') * 1000:.0f} ms of it after Completed) vs"
        f" {med('3b plain function call') * 1e6:.1f} µs for a plain call",
    ]


def stages(bench: Bench) -> Iterator[tuple[str, Callable[[Bench, int], dict]]]:
    yield "3a. ci-checks through run_deployment (quiet system)", deployment_once
    yield "1. drift event → retrain", drift_once
    yield "2. registration → canary live → canary-analysis", registration_once


def run_stages(bench: Bench) -> None:
    for title, measure in stages(bench):
        print(f"\n{title}", flush=True)
        for index in range(1, bench.args.runs + 1):
            if bench.time_left() < 45:
                print(f"  run {index}: skipped, {bench.time_left():.0f}s of the budget left")
                break
            bench.runs.append(measure(bench, index))
    print("\n3b. in-process; 3c. a flow-run subprocess's imports", flush=True)
    bench.runs.append(in_process(bench))
    bench.runs.append(import_cost(bench))


@contextmanager
def bench_on_stack(args: argparse.Namespace) -> Iterator[Bench]:
    """The local stack with the deployments and a worker, and the data the runs use."""
    from bench.stack import bench_stack
    from flows.scenario.world import World

    env = {"MLOPS_CANARY_MAX_WAIT_S": str(args.canary_max_wait_s)}  # the worker inherits it
    with bench_stack("loop", env, worker=True) as stack:
        world = World.from_environment(stack.serving_url, rows=args.rows)
        batch = world.publish("bench-batch", world.houses(seed=1))
        users = world.houses(seed=2, rows=5000)
        yield Bench(world, args, deployment_names(), batch, users)


def deployment_names() -> dict[UUID, str]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return {d.id: d.name for d in client.read_deployments()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Event-to-run latencies and Prefect overhead")
    parser.add_argument("--runs", type=int, default=5, help="measurements per figure")
    parser.add_argument("--rows", type=int, default=3000, help="rows of the training batch")
    parser.add_argument("--poll-s", type=float, default=0.2, help="run_deployment poll interval")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="longest wait per step")
    parser.add_argument("--canary-max-wait-s", type=float, default=60.0, help="analysis window")
    parser.add_argument("--budget-s", type=float, default=900.0, help="stop starting new runs")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from bench.stack import quiet_prefect

    args = parse_args(argv)
    began = time.monotonic()
    quiet_prefect()
    with bench_on_stack(args) as bench:
        print(f"stack up in {time.monotonic() - began:.0f}s", flush=True)
        first_model(bench)
        run_stages(bench)
    table = figures(bench.samples)
    print_table(table)
    print("\n" + "\n".join(summary_lines(table)))
    total = time.monotonic() - began
    print(f"\ntotal {total:.0f}s (stack start and stop included)")
    if args.json is not None:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        payload = {"config": config, "figures": table, "runs": bench.runs, "total_s": total}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/loop.py` too
    from bench.loop import main as bench_main

    raise SystemExit(bench_main())
