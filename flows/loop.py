"""The main job: the whole self-healing loop on the local stack, start to finish.

    python -m flows.loop            # start the stack, play the scenario, print the timeline, stop
    python -m flows.loop --keep     # ... and keep the stack running to explore the Prefect UI

It starts a real S3 server, a Prefect server (SQLite, with the UI), the KServe model server and
a process worker, registers every deployment and automation, then plays the scenario: CI checks →
v1 trained and served → users send traffic, the truth arrives later → a corrupt batch refused →
the market moves, the daily drift check (run now) fires → retrain → v2 canary → promoted → a
worse v3 slips past the gate → canary → rolled back automatically → a late-labelled worse v4
is put back by the guard → a user's CSV (diabetes) configured and gated → a classifier (breast
cancer) configured, trained and served from its own model server by the same automations.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from flows.scenario.play import Scenario, ScenarioFailed, play
from flows.scenario.timeline import flow_run_lines
from flows.scenario.world import World
from infra.local_stack import LocalStack, local_stack


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def summary(scenario: Scenario, stack: LocalStack, wall: float) -> str:
    world = scenario.world
    registry = world.registry
    lines = ["", "Stages", "------"]
    lines += [
        f"  {'ok ' if s.ok else 'BAD'} {s.name:<46} {s.seconds:6.1f}s  {s.detail}"
        for s in scenario.steps
    ]
    lines += ["", "Flow runs (from the Prefect server)", "-----------------------------------"]
    lines += flow_run_lines(stack.prefect_ui)
    sent = sum(r.sent for r in world.traffic_reports)
    failed = sum(r.failed for r in world.traffic_reports)
    versions = ", ".join(f"v{m.version}" for m in registry.versions())
    lines += [
        "",
        f"Users       {sent} requests, {failed} failed",
        f"Registry    s3://{world.settings.bucket}/models/{world.model}/  versions {versions}",
        f"            aliases {registry.aliases()}; {len(registry.history())} alias moves",
        f"Reports     s3://{world.settings.bucket}/reports/{world.model}/drift/*.html (drift),"
        f" canary/*.json (every verdict with its evidence), guard/*.json",
        f"Verdicts    `uv run mlops explain {world.model} [--at TIME]` (with --keep): the evidence,"
        " bounds and sizes behind a promotion or rollback, replayed",
        f"Logs        s3://{world.settings.bucket}/serving-logs/{world.model}/",
        f"S3 server   {stack.s3_url}",
        f"Prefect UI  {stack.prefect_ui}",
        f"Local logs  {', '.join(f'{k}: {v}' for k, v in stack.logs.items())}",
        f"Wall time   {wall:.1f}s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack running afterwards")
    parser.add_argument("--rows", type=int, default=4000, help="rows per generated data batch")
    arguments = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    print("starting the local stack: S3, Prefect server + UI, model server, worker ...", flush=True)
    ok = False
    try:
        with local_stack() as stack:
            print(
                f"  Prefect UI  {stack.prefect_ui}\n  S3 server   {stack.s3_url}\n"
                f"  model       {stack.serving_url}/v1/models/<name>:predict",
                flush=True,
            )
            world = World.from_environment(
                stack.serving_url, arguments.rows, stack.add_model_server
            )
            scenario = Scenario(world)
            try:
                play(scenario)
                ok = True
            except ScenarioFailed as error:
                print(f"\nSCENARIO FAILED: {error}", flush=True)
            print(summary(scenario, stack, time.monotonic() - started), flush=True)
            if arguments.keep:
                print(f"\nstack kept running: open {stack.prefect_ui} — Ctrl-C to stop", flush=True)
                signal.pause()
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped", flush=True)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
