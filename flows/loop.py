"""The main job: the self-healing loop played end to end on the local stack.

    python -m flows.loop            # run the scenario, print the timeline, stop everything
    python -m flows.loop --keep     # ... and keep the stack running to explore the Prefect UI

Stages so far: CI checks on fresh data → first model → a corrupt batch refused → drifted data
→ retrain judged against the champion → registered. Serving, canary and the event-driven drift
check join as they land.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from flows.scenario import Scenario, run_scenario
from infra.local_stack import local_stack


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the stack running after the scenario"
    )
    parser.add_argument("--rows", type=int, default=4000, help="rows per generated data batch")
    arguments = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    print("starting the local stack (S3 server, Prefect server on SQLite) ...", flush=True)
    try:
        with local_stack() as stack:
            print(f"  S3 server   {stack.s3_url}\n  Prefect UI  {stack.prefect_ui}", flush=True)
            scenario = Scenario(rows=arguments.rows)
            ok = run_scenario(scenario)
            print(scenario.summary(stack, time.monotonic() - started), flush=True)
            if arguments.keep:
                print(f"stack kept running: open {stack.prefect_ui} — Ctrl-C to stop", flush=True)
                signal.pause()
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped", flush=True)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
