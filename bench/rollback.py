"""Benchmark: how fast a bad canary is taken out of traffic, on the real local stack.

The local stack (bench/stack.py: SeaweedFS with the training and serving identities, a Prefect
server and the local KServe model server, on loopback; no worker) serves it; background users
(infra/traffic.py) send requests and attach the sale prices a second later. Two kinds of bad
canary go live next to a good stable version, each `--runs` times:

(a) worse predictions: trained on prices x1.6, caught by the `canary-analysis` flow;
(b) broken: answers NaN for houses in condition 4 or 5, which live traffic holds (40% of rows)
    but the server's probe batch never does (it spans the lower half of each contract range),
    so it loads and then is caught by the router's live failover.

A thread polls GET /mlops/v1/routing every 50 ms. Times run from the canary going live (the
first poll that sees it take traffic, i.e. within 50 ms of start_canary returning) to the first
poll showing stable with 100% of traffic. The deploy flow itself returns ~0.8 s after go-live
(Prefect's end-of-run bookkeeping), so "from deploy returned" would hide that time; it is
reported separately. The analysis is started right after deploy returns, in this process.

    python -m bench.rollback --runs 3 --json rollback.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import httpx
import numpy as np
import pandas as pd

if TYPE_CHECKING:  # the model server unpickles NaNAbove from here: keep this import light
    from infra.traffic import Traffic
    from tasks.data.contract import DataContract
    from tasks.decisions.canary import CanaryVerdict
    from tasks.registry.versions import ModelRegistry

TARGET_S = 30.0
FLAGGER_S = 60.0 * 5  # Flagger's documented analysis: interval 1m, threshold 5 failed checks
BROKEN_COLUMN = "condition"


class NaNAbove:
    """A fitted model that answers NaN for every row whose `column` is above `limit`."""

    def __init__(self, model: object, column: str, limit: float) -> None:
        self.model, self.column, self.limit = model, column, limit

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        predictions = np.asarray(self.model.predict(frame), dtype=float)
        broken = frame[self.column].to_numpy(dtype=float) > self.limit
        return np.where(broken, np.nan, predictions)


@dataclass
class RunResult:
    """One bad canary's life: when it went and what users saw meanwhile."""

    case: str
    run: int
    version: int
    deploy_s: float  # how long the deploy flow took (the canary goes live inside it)
    seen_live: bool  # a poll saw the canary taking traffic (else: out before the next poll)
    to_stable_s: float | None  # canary live -> stable has 100% of traffic
    to_removed_s: float | None  # canary live -> routing shows canary_version None
    deploy_lag_s: float  # canary live -> the deploy flow returned (Prefect's own bookkeeping)
    bad_requests: int  # requests routed to the bad version (failed-over ones included)
    answered_by_bad: int  # answers users got from the bad version
    users_sent: int
    users_failed: int
    action: str = ""
    reasons: list[str] = field(default_factory=list)
    decision_s: float | None = None  # canary live -> verdict, as the verdict's evidence says
    phases: dict[str, float] = field(default_factory=dict)
    log_objects: int = 0  # serving-log and label files on S3 when the run ended


class RoutingWatch:
    """Polls GET /mlops/v1/routing every 50 ms; notes when `version` stops taking traffic."""

    def __init__(self, url: str, version: int, max_s: float, every_s: float = 0.05) -> None:
        self.url, self.version, self.max_s, self.every_s = url, version, max_s, every_s
        self.seen = False
        self.absent_at: float | None = None  # last poll before the canary appeared
        self.live_at: float | None = None  # first poll that saw it taking traffic
        self.off_at: float | None = None
        self.removed_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="routing-watch", daemon=True)

    def __enter__(self) -> RoutingWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def wait(self, removed: bool, timeout: float) -> bool:
        """Block until the canary is off (or removed), the watch ends, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            if (self.removed_at if removed else self.off_at) is not None:
                return True
            time.sleep(self.every_s / 2)
        return (self.removed_at if removed else self.off_at) is not None

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                routing = client.get("/mlops/v1/routing").json()["routing"]
                self._note(routing, time.monotonic())
                if self.removed_at is not None:
                    return
                self._stop.wait(self.every_s)

    @property
    def went_live(self) -> float | None:
        """When the canary went live: the first poll that saw it, or (if it was out before the
        next poll) the last poll before it appeared, which overstates its time in traffic."""
        return self.live_at if self.live_at is not None else self.absent_at

    def _note(self, routing: dict, now: float) -> None:
        if routing["canary_version"] != self.version:
            if not self.seen:
                self.absent_at = now
            elif self.removed_at is None:
                self.removed_at = now
                self.off_at = self.off_at if self.off_at is not None else now
            return
        self.seen = True
        if routing["canary_percent"] > 0:
            self.live_at = self.live_at if self.live_at is not None else now
        elif self.off_at is None:
            self.off_at = now


@dataclass
class Stack:
    """The running servers and the registry the runs share."""

    registry: ModelRegistry
    contract: DataContract
    url: str
    model_name: str
    stable: int
    worse_model: object
    broken_model: NaNAbove
    frame: pd.DataFrame  # what the models were trained on, for the manifests


def register(
    registry: ModelRegistry, contract: DataContract, model: object, frame: pd.DataFrame
) -> int:
    """Register `model` as a new version (same bytes may be registered again under a new number)."""
    from tasks.data.loading import data_digest
    from tasks.registry.versions import DataSummary, ModelSpec
    from tasks.training.model import library_versions

    spec = ModelSpec(features=contract.feature_names, target="price", metrics={"r2": 0.9},
                     data=DataSummary(digest=data_digest(frame), rows=len(frame)),
                     contract={"name": contract.name}, git_revision="bench", params={},
                     library_versions=library_versions())  # fmt: skip
    return registry.register(model, spec).version


def probe_ceiling(contract: DataContract, column: str) -> float:
    """The largest value of `column` in the probe batch a new version must pass on load."""
    from tasks.modelserver.inputs import feature_specs, probe_rows

    specs = feature_specs(contract.feature_names, contract)
    index = contract.feature_names.index(column)
    return max(float(row[index]) for row in probe_rows(specs))


def train_models(contract: DataContract) -> tuple[object, object, NaNAbove, pd.DataFrame]:
    """A good model, one that prices every house x1.6, and a broken wrapper of a good one."""
    from tasks.data.synthetic import generate_house_prices
    from tasks.training.model import train_model

    frame = generate_house_prices(1500, seed=41)
    good = train_model(frame, contract, seed=41).model
    worse_frame = frame.assign(price=frame["price"] * 1.6)
    worse = train_model(worse_frame, contract, seed=43).model
    broken = NaNAbove(good, BROKEN_COLUMN, probe_ceiling(contract, BROKEN_COLUMN))
    return good, worse, broken, frame


@contextmanager
def stack_with_stable(args: argparse.Namespace) -> Iterator[Stack]:
    """The local stack without a worker (the flows run here), a good version served stable."""
    from bench.stack import bench_stack
    from flows.deploy import deploy
    from tasks.data.contract import load_contract
    from tasks.decisions.routing import ServeOptions
    from tasks.registry.versions import open_registry
    from tasks.settings import DEFAULT_CONTRACT, get_settings

    model_name, contract = "bench-rollback", load_contract(DEFAULT_CONTRACT)
    env = {"MLOPS_MODEL_NAME": model_name, "MLOPS_CANARY_POLL_S": str(args.poll_s)}
    options = ServeOptions(log_flush_seconds=args.flush_s)
    with bench_stack("rollback", env, worker=False, serve_options=options) as stack:
        registry = open_registry(get_settings(), create_bucket=True)
        good, worse, broken, frame = train_models(contract)
        stable = register(registry, contract, good, frame)
        deploy(version=stable, reason="bench: stable")
        yield Stack(registry, contract, stack.serving_url, model_name, stable, worse, broken, frame)


def users(stack: Stack, seed: int) -> Traffic:
    """Background users on 3000 generated houses; labels attached every second."""
    from infra.traffic import Traffic
    from tasks.data.synthetic import generate_house_prices

    rows = generate_house_prices(3000, seed=seed)
    return Traffic(stack.url, stack.model_name, rows, "price", stack.registry.store)


def go_live(stack: Stack, version: int, percent: int) -> tuple[float, float]:
    """Run the deploy flow for a canary; (monotonic, wall-clock seconds) when it returned."""
    from flows.deploy import deploy

    kind = deploy(version=version, percent=percent, reason="bench: bad canary")
    if kind != "canary":
        raise RuntimeError(f"v{version} went out as {kind!r}, not as a canary")
    return time.monotonic(), time.time()


def analyse(max_wait_s: float) -> tuple[CanaryVerdict, UUID]:
    """Run the canary-analysis flow; its verdict and its flow-run id."""
    from flows.canary_analysis import canary_analysis

    state = canary_analysis(max_wait_s=max_wait_s, return_state=True)
    record = state.result()
    if record is None:  # the failover took the canary out and rolled it back first
        raise RuntimeError("no canary left to judge: the failover rolled it back first")
    return record.verdict, state.state_details.flow_run_id


def flow_phases(flow_run_id: UUID, live_wall: float, wait_s: float = 10.0) -> dict[str, float]:
    """Seconds from `live_wall` (epoch) to the start of the canary-analysis flow run and the end
    of each of its tasks, as the Prefect API recorded them."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    wanted = {"watch_canary", "publish_canary_verdict", "act_on_verdict"}
    deadline, phases = time.monotonic() + wait_s, {}
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            flow_run = client.read_flow_run(flow_run_id)
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            ends = {r.name.rsplit("-", 1)[0]: r for r in runs if r.end_time is not None}
            if wanted <= set(ends) and flow_run.start_time is not None:
                phases = {"flow_started": flow_run.start_time.timestamp() - live_wall}
                phases |= {
                    f"{name}_done": ends[name].end_time.timestamp() - live_wall
                    for name in sorted(wanted)
                }
                phases["watch_canary_s"] = (
                    ends["watch_canary"].end_time - ends["watch_canary"].start_time
                ).total_seconds()
                return phases
            time.sleep(0.5)
    return phases


def requests_to(stack: Stack, version: int) -> int:
    """Requests the router sent to `version` (answered or failed over), from its counters."""
    stats = httpx.get(f"{stack.url}/mlops/v1/stats", timeout=10).json()["versions"]
    return int(stats.get(str(version), {}).get("requests", 0))


def log_objects(stack: Stack) -> int:
    """Serving-log and label files the canary analysis reads on every look."""
    from tasks.modelserver.logs import logs_prefix

    return sum(1 for _ in stack.registry.store.list_keys(logs_prefix(stack.model_name)))


def one_run(stack: Stack, case: str, run: int, args: argparse.Namespace) -> RunResult:
    """Put a fresh bad version on canary under live traffic and time its way out."""
    model = stack.worse_model if case == "worse" else stack.broken_model
    version = register(stack.registry, stack.contract, model, stack.frame)
    with users(stack, seed=100 + run) as traffic:
        time.sleep(args.warmup_s)  # users are already there when the canary arrives
        with RoutingWatch(stack.url, version, max_s=args.max_wait_s + 60) as watch:
            started = time.monotonic()
            live, live_wall = go_live(stack, version, args.percent)
            if case == "broken":  # the router alone; the analysis only tidies up after it
                watch.wait(removed=False, timeout=args.failover_wait_s)
            verdict, flow_run_id = analyse(args.max_wait_s)
            watch.wait(removed=True, timeout=10)
    report, went_live = traffic.report, watch.went_live or started
    return RunResult(
        case=case, run=run, version=version, deploy_s=live - started,
        seen_live=watch.live_at is not None, to_stable_s=since(went_live, watch.off_at),
        to_removed_s=since(went_live, watch.removed_at), deploy_lag_s=live - went_live,
        bad_requests=requests_to(stack, version),
        answered_by_bad=report.by_version.get(str(version), 0),
        users_sent=report.sent, users_failed=report.failed, action=verdict.action,
        reasons=list(verdict.reasons), decision_s=verdict.evidence.canary_elapsed_s,
        phases=flow_phases(flow_run_id, live_wall - (live - went_live)),
        log_objects=log_objects(stack),
    )  # fmt: skip


def since(start: float, end: float | None) -> float | None:
    return None if end is None else end - start


CASES = {
    "worse": "(a) worse predictions (prices x1.6), caught by canary-analysis",
    "broken": f"(b) broken: NaN when {BROKEN_COLUMN} is above the probe's range, live failover",
}


def spread(values: list[float | None]) -> dict[str, float | None]:
    """Median and max of the values that were measured."""
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "max": None}
    return {"median": statistics.median(known), "max": max(known)}


def summarize(results: list[RunResult]) -> dict[str, dict]:
    """Median and max per case of the figures the brief asks for, and the 30 s target check."""
    summary = {}
    for case in CASES:
        runs = [r for r in results if r.case == case]
        if not runs:
            continue
        stable = spread([r.to_stable_s for r in runs])
        summary[case] = {
            "runs": len(runs),
            "to_stable_s": stable,
            "to_removed_s": spread([r.to_removed_s for r in runs]),
            "decision_s": spread([r.decision_s for r in runs]),
            "bad_requests": spread([r.bad_requests for r in runs]),
            "answered_by_bad": spread([r.answered_by_bad for r in runs]),
            "users_failed": spread([r.users_failed for r in runs]),
            "all_rolled_back": all(r.action == "rollback" for r in runs),
            "under_target": all(r.to_stable_s is not None for r in runs)
            and stable["max"] < TARGET_S,
        }
    return summary


def _s(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.2f}"


def print_run(r: RunResult) -> None:
    bound = "" if r.seen_live else " (out before a poll saw it: an upper bound)"
    print(
        f"  run {r.run} v{r.version}: 100% stable after {_s(r.to_stable_s)}s{bound};"
        f" canary removed after {_s(r.to_removed_s)}s; verdict at {_s(r.decision_s)}s"
    )
    print(
        f"    bad version got {r.bad_requests} requests (answered {r.answered_by_bad});"
        f" users sent {r.users_sent}, {r.users_failed} failed;"
        f" deploy flow {r.deploy_s:.2f}s, returned {r.deploy_lag_s:.2f}s after go-live"
    )
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in sorted(r.phases.items(), key=lambda i: i[1]))
    print(f"    analysis (s after go-live): {phases or 'n/a'}")
    reason = r.reasons[0] if r.reasons else ""
    reason = reason if len(reason) <= 120 else reason[:119] + "…"
    print(f"    {r.action} ({r.log_objects} log/label files on S3): {reason}")


def print_summary(summary: dict[str, dict]) -> None:
    print("\nsummary (median / max over runs)")
    for case, figures in summary.items():
        stable, bad = figures["to_stable_s"], figures["bad_requests"]
        failed, decision = figures["users_failed"], figures["decision_s"]
        print(f"  {CASES[case]}  [{figures['runs']} runs]")
        print(f"    seconds to 100% stable      {_s(stable['median'])} / {_s(stable['max'])}")
        print(f"    verdict after (s)           {_s(decision['median'])} / {_s(decision['max'])}")
        print(f"    requests to the bad version {bad['median']:6.1f} / {bad['max']:6.0f}")
        print(f"    failed requests seen by users {failed['median']:4.0f} / {failed['max']:4.0f}"
              f"   {'OK' if failed['max'] == 0 else 'NOT ZERO'}")  # fmt: skip
        verdict = "PASS" if figures["under_target"] else "FAIL"
        print(f"    target: 100% stable in under {TARGET_S:.0f} s locally: {verdict}")
        if stable["max"] is not None and stable["max"] > 0:
            print(f"    Flagger defaults (interval 1m x threshold 5) need >= {FLAGGER_S:.0f} s:"
                  f" {FLAGGER_S / stable['max']:.0f}x the worst run here")  # fmt: skip
        else:
            print(f"    Flagger defaults (interval 1m x threshold 5) need >= {FLAGGER_S:.0f} s")


def print_setup(stack: Stack, args: argparse.Namespace, seconds: float) -> None:
    broken = stack.broken_model
    print(f"stack up in {seconds:.1f}s: stable v{stack.stable}, canary {args.percent}%,"
          f" canary-analysis poll {args.poll_s}s, serving-log flush {args.flush_s}s;"
          f" routing polled every 50 ms")  # fmt: skip
    print(f"broken canary answers NaN where {broken.column} > {broken.limit:.2f},"
          " the highest value in the server's load-time probe batch")  # fmt: skip


def run_all(args: argparse.Namespace) -> list[RunResult]:
    """Every case `args.runs` times on one stack, within the time budget."""
    started, results = time.monotonic(), []
    with stack_with_stable(args) as stack:
        print_setup(stack, args, time.monotonic() - started)
        for case in args.cases:
            print(f"\n{CASES[case]}")
            for run in range(1, args.runs + 1):
                left = args.budget_s - (time.monotonic() - started)
                if left < args.max_wait_s / 2:
                    print(f"  run {run}: skipped, {left:.0f}s of the time budget left")
                    break
                results.append(one_run(stack, case, run, args))
                print_run(results[-1])
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time from a bad canary going live to rollback")
    parser.add_argument("--runs", type=int, default=3, help="runs per kind of bad canary")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--percent", type=int, default=10, help="canary share of traffic")
    parser.add_argument("--poll-s", type=float, default=1.0, help="canary-analysis poll interval")
    parser.add_argument("--flush-s", type=float, default=1.0, help="serving-log flush interval")
    parser.add_argument("--max-wait-s", type=float, default=60.0, help="canary-analysis window")
    parser.add_argument("--failover-wait-s", type=float, default=20.0, help="(b) wait for failover")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="users before the canary")
    parser.add_argument("--budget-s", type=float, default=330.0, help="stop starting new runs")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--verbose", action="store_true", help="keep Prefect's run logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 if every bad canary was rolled back in time with no user failing."""
    from bench.stack import quiet_prefect

    args = parse_args(argv)
    began = time.monotonic()
    if not args.verbose:
        quiet_prefect()
    results = run_all(args)
    summary = summarize(results)
    print_summary(summary)
    print(f"\ntotal {time.monotonic() - began:.0f}s")
    if args.json is not None:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        config |= {"target_s": TARGET_S, "flagger_default_s": FLAGGER_S}
        payload = {"config": config, "summary": summary, "runs": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    ok = [f["under_target"] and f["all_rolled_back"] and f["users_failed"]["max"] == 0
          for f in summary.values()]  # fmt: skip
    return 0 if ok and all(ok) else 1


if __name__ == "__main__":
    # `python bench/rollback.py` too: the pickled NaNAbove must be bench.rollback.NaNAbove, which
    # the model server (cwd: the repository) can import, never __main__.NaNAbove.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.rollback import main as bench_main

    raise SystemExit(bench_main())
