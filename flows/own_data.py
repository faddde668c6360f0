"""`mlops check | train | drift | serve` for one's own model, against the running stack.

    mlops init  --data energy.csv --target kwh --register   # the model's configuration, stored
    mlops serve --name energy --port 8081 &                  # a model server for it, beside others
    mlops train --name energy --data energy.csv              # check, train, gate, register, deploy
    mlops drift --name energy                                # its serving logs against its data

Addresses come from the running stack (`.runtime/stack.json`, written by `mlops stack up`) or
the MLOPS_* environment; each model's server records its address in `.runtime/serving/<name>.json`
so `train` deploys to it. The flows run in this process and report to the stack's Prefect
server, so every run is in the UI. One stack serves several models side by side: one model
server each, one registry prefix each, one configuration each.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from infra.local_stack import RUNTIME_DIR, write_serving_record

SERVING_DIR = RUNTIME_DIR / "serving"


def add_commands(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check", help="validate a data file and gate a candidate on it")
    train = commands.add_parser("train", help="check, train, gate, register and deploy a model")
    drift = commands.add_parser("drift", help="a model's serving logs (or --data) against its data")
    for sub in (check, train, drift):
        sub.add_argument("--name", required=True, help="the model (as registered by mlops init)")
    for sub in (check, train):
        sub.add_argument("--data", required=True, help="a CSV (path or s3:// URI)")
    drift.add_argument("--data", help="a CSV batch instead of the serving logs")
    drift.add_argument("--hours", type=float, default=24.0, help="the window of serving logs")
    train.add_argument("--percent", type=int, help="the canary's share when a champion exists")
    train.add_argument(
        "--max-wait-s", type=float, help="how long the canary analysis may watch (default: policy)"
    )


def serving_record(name: str) -> Path:
    """Where `mlops serve` records the address of `name`'s server: MLOPS_SERVING_RECORDS (the
    running stack sets it, and its worker's flow runs read it), else .runtime/serving."""
    return Path(os.environ.get("MLOPS_SERVING_RECORDS") or SERVING_DIR) / f"{name}.json"


def serve_model(name: str, port: int) -> int:
    """A model server for `name` on 127.0.0.1:`port`, in the foreground, recorded for `train`."""
    from infra.model_server_main import main as serve_main

    record = serving_record(name)
    write_serving_record(record, os.getpid(), f"http://127.0.0.1:{port}")
    try:
        return serve_main(["--model-name", name, "--port", str(port)])
    finally:
        record.unlink(missing_ok=True)


def check(arguments: argparse.Namespace) -> int:
    from flows.ci_checks import ci_checks

    return _report(lambda: ci_checks(data=arguments.data, model_name=arguments.name), "check")


def train(arguments: argparse.Namespace) -> int:
    """retrain → deploy (the first version straight to champion, later ones as a canary) →
    canary analysis, with a line per stage."""
    from flows.canary_analysis import canary_analysis
    from flows.deploy import deploy
    from flows.retrain import retrain
    from tasks.registry.versions import Manifest
    from tasks.release.target import local_server_url
    from tasks.settings import get_settings

    name = arguments.name
    records = serving_record(name).parent  # its own server, if `mlops serve` recorded one
    settings = get_settings(model_name=name, serving_records=records)
    url = local_server_url(settings)
    if url != settings.serving_url:  # the flows below build their settings from the environment
        os.environ["MLOPS_SERVING_URL"] = url
    print(f"[1/3] retrain {name} on {arguments.data}: check the data, train, gate, register …")
    start = time.monotonic()
    try:
        result = retrain(data=arguments.data, model_name=name, reason="mlops train")
    except Exception as error:  # the flow's own message names the refusal
        print(f"      refused: {error}")
        return 1
    if not isinstance(result, Manifest):
        print(f"      nothing registered: {result}")
        return 1
    print(
        f"      registered v{result.version} in {time.monotonic() - start:.1f}s: {result.metrics}"
    )
    print(f"[2/3] deploy v{result.version} to {url} …")
    kind = deploy(version=result.version, percent=arguments.percent, model_name=name,
                  reason="mlops train")  # fmt: skip
    print(f"      {kind}")
    if kind != "canary":
        print("[3/3] no canary: it is the champion now (the next train is canaried)")
        return 0
    print("[3/3] canary analysis: watching the canary's evidence in the serving logs …")
    verdict = canary_analysis(model_name=name, max_wait_s=arguments.max_wait_s)
    if verdict is not None:
        print(f"      {verdict.verdict.action}: {'; '.join(verdict.verdict.reasons)}")
    print(f"      the evidence and its replay: mlops explain {name}")
    return 0


def drift(arguments: argparse.Namespace) -> int:
    from flows.drift import drift_check

    return _report(
        lambda: drift_check(data=arguments.data, window_hours=arguments.hours,
                            model_name=arguments.name),
        "drift",
    )  # fmt: skip


def _report(run, what: str) -> int:
    try:
        verdict = run()
    except Exception as error:
        print(f"mlops {what}: {error}")
        return 1
    print(f"mlops {what}: {verdict}")
    return 0
