"""`mlops`: the common acts from a terminal.

    mlops loop [--keep]          play the whole self-healing loop on a fresh local stack
    mlops stack up               start the local stack and keep it running (Ctrl-C stops it)
    mlops stack down             stop a stack started by `mlops stack up` in another terminal
    mlops serve [--name N] [--port P]  a model server in the foreground (default: MLOPS_*)
    mlops status                 champion, canary, traffic split, last drift verdict
    mlops promote                make the live canary the champion now
    mlops rollback [--reason R]  canary out of traffic, or back to the previous champion
    mlops history                every alias move: who, when, from, to, why
    mlops explain [MODEL] [--at TIME]  a canary verdict with its evidence, replayed to check it
    mlops init --data FILE --target COLUMN [--name N] [--out PATH] [--force] [--register]
                                 infer a model configuration (data contract) from a CSV/Parquet,
                                 and store it in the registry (--register)
    mlops check --name N --data FILE   validate a batch and gate a candidate on it
    mlops train --name N --data FILE   check, train, gate, register, deploy (canary if a champion)
    mlops drift --name N [--data FILE] the serving logs (or a batch) against the training data

Commands other than `loop`/`stack up`/`init` (without --register) talk to a running stack: they read its addresses and
(local, random) credentials from .runtime/stack.json, or from MLOPS_* variables when set.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from flows import own_data
from infra.local_stack import RUNTIME_DIR, local_stack

STACK_FILE = RUNTIME_DIR / "stack.json"


def _use_running_stack() -> None:
    if STACK_FILE.exists():
        for key, value in json.loads(STACK_FILE.read_text())["env"].items():
            os.environ.setdefault(key, value)


def stack_up(_: argparse.Namespace) -> int:
    with local_stack() as stack:
        keys = (
            "MLOPS_S3_ENDPOINT",
            "MLOPS_S3_ACCESS_KEY",
            "MLOPS_S3_SECRET_KEY",
            "MLOPS_MANIFEST_KEY",  # commands in another shell verify signatures with it
            "MLOPS_SERVING_URL",
            "MLOPS_SERVING_RECORDS",  # further models' servers (`mlops serve`)
            "PREFECT_API_URL",
        )
        record = {"pid": os.getpid(), "env": {k: os.environ[k] for k in keys if k in os.environ}}
        STACK_FILE.write_text(json.dumps(record, indent=2))
        STACK_FILE.chmod(0o600)
        print(f"stack up — Prefect UI {stack.prefect_ui}, model {stack.serving_url}; Ctrl-C stops")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            STACK_FILE.unlink(missing_ok=True)
    return 0


def stack_down(_: argparse.Namespace) -> int:
    if not STACK_FILE.exists():
        print("no running stack recorded in .runtime/stack.json")
        return 1
    os.kill(json.loads(STACK_FILE.read_text())["pid"], signal.SIGINT)
    print("asked the stack to stop; it stops everything it started")
    return 0


def status(_: argparse.Namespace) -> int:
    import httpx

    from tasks.registry.versions import open_registry
    from tasks.settings import get_settings

    settings = get_settings()
    registry = open_registry(settings)
    print(f"model     {settings.model_name}\naliases   {registry.aliases()}")
    try:
        routing = httpx.get(f"{settings.serving_url}/mlops/v1/routing", timeout=5).json()
        print(f"serving   {routing['routing']}")
    except httpx.HTTPError as error:
        print(f"serving   unreachable at {settings.serving_url}: {error}")
    prefix = f"reports/{settings.model_name}/drift/"
    drift = sorted(k for k in registry.store.list_keys(prefix) if k.endswith(".html"))
    print(f"drift     last report {drift[-1] if drift else 'none yet'}")
    return 0


def act(name: str) -> int:
    from flows.rollback import rollback
    from tasks.registry.versions import open_registry
    from tasks.release.acts import promote
    from tasks.release.target import open_target
    from tasks.settings import get_settings

    if name == "rollback":
        print(rollback(reason=os.environ.get("MLOPS_REASON", "by hand (cli)")))
        return 0
    settings = get_settings()
    print(
        promote.fn(
            open_registry(settings, create_bucket=True), open_target(settings), "by hand (cli)"
        )
    )
    return 0


def history(_: argparse.Namespace) -> int:
    from tasks.registry.versions import open_registry
    from tasks.settings import get_settings

    settings = get_settings()
    for move in open_registry(settings).history():
        print(
            f"{move.at:%Y-%m-%d %H:%M:%S}  {move.alias:<9} v{move.from_version} → "
            f"v{move.to_version}  by {move.by}: {move.reason}"
        )
    return 0


def explain(arguments: argparse.Namespace) -> int:
    """Print the last canary verdict at or before --at from its record, and replay it."""
    from datetime import UTC, datetime

    from tasks.registry.versions import open_registry
    from tasks.release.records import explain as explain_record
    from tasks.release.records import load_record, replay
    from tasks.settings import get_settings

    settings = get_settings(model_name=arguments.model)
    at = None
    if arguments.at:
        at = datetime.fromisoformat(arguments.at)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
    try:
        record = load_record(open_registry(settings).store, settings.model_name, at)
    except LookupError as error:
        print(error)
        return 1
    print(explain_record(record))
    again = replay(record)
    same = again.model_dump() == record.verdict.model_dump()
    print(
        f"replayed through decide_canary: {again.action.upper()}"
        f" ({'the same verdict' if same else 'A DIFFERENT VERDICT: the policy code changed'})"
    )
    return 0 if same else 2


def serve(arguments: argparse.Namespace) -> int:
    from tasks.settings import get_settings

    settings = get_settings(model_name=arguments.name)
    port = arguments.port or int(settings.serving_url.rsplit(":", 1)[-1].rstrip("/"))
    return own_data.serve_model(settings.model_name, port)


def init(arguments: argparse.Namespace) -> int:
    """Infer a model configuration from a data file, write it for review, say what was decided."""
    from tasks.data.inference import InferenceError, default_name, infer_config
    from tasks.data.loading import DataLoadError, read_table
    from tasks.data.model_config import config_yaml, write_config

    name = arguments.name or default_name(arguments.data)
    out = Path(arguments.out or f"{name}.yaml")
    if out.exists() and arguments.register and not arguments.force:
        print(f"{out} exists: registering it as reviewed (not inferred again)")
        return register_config(name, out)
    try:
        if out.exists() and not arguments.force:
            raise FileExistsError(out)  # before reading what may be a large file
        frame = read_table(arguments.data)
        config, decisions = infer_config(
            frame, arguments.target, name, f"inferred by mlops init from {arguments.data}"
        )
        write_config(out, config_yaml(config, decisions, arguments.data), arguments.force)
    except FileExistsError:
        print(f"mlops init: {out} exists; pass --force to replace it", file=sys.stderr)
        return 2
    except (DataLoadError, InferenceError, OSError) as error:
        print(f"mlops init: {error}", file=sys.stderr)
        return 2
    print("\n".join([f"inferred from {len(frame)} rows of {arguments.data}:", *decisions]))
    if not arguments.register:
        print(f"wrote {out}: review it, then store it with `mlops init ... --register --force`")
        return 0
    return register_config(name, out)


def register_config(name: str, path: Path) -> int:
    """Store the configuration at `path` as model `name`'s, signed, in the registry."""
    from tasks.data.contract import ContractError
    from tasks.registry.configs import config_key, publish_config
    from tasks.registry.versions import open_registry
    from tasks.settings import get_settings

    _use_running_stack()
    try:
        registry = open_registry(get_settings(model_name=name), create_bucket=True)
        digest = publish_config(registry, path)
    except (ContractError, OSError, RuntimeError) as error:
        print(f"mlops init: not registered: {error}", file=sys.stderr)
        return 2
    where = f"s3://{registry.store.bucket}/{config_key(registry)}"
    print(f"wrote {path} and registered it as {name}'s configuration: {where} ({digest[:12]})")
    print("every flow run, worker and model server of this model now reads it")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="mlops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = root.add_subparsers(dest="command", required=True)
    loop = commands.add_parser("loop", help="play the whole loop on a fresh local stack")
    loop.add_argument("--keep", action="store_true", help="keep the stack running afterwards")
    stack = commands.add_parser("stack", help="start (up) or stop (down) the local stack")
    stack.add_argument("action", choices=["up", "down"])
    serving = commands.add_parser("serve", help="run a model server in the foreground")
    serving.add_argument("--name", help="the model (default: MLOPS_MODEL_NAME)")
    serving.add_argument("--port", type=int, help="on 127.0.0.1 (default: MLOPS_SERVING_URL's)")
    commands.add_parser("status", help="champion, canary, split, last drift report")
    commands.add_parser("promote", help="make the live canary the champion now")
    rollback = commands.add_parser("rollback", help="canary out, or back to the previous champion")
    rollback.add_argument("--reason", default="by hand (cli)")
    commands.add_parser("history", help="every alias move with who, when and why")
    why = commands.add_parser("explain", help="a canary verdict, its evidence and its replay")
    why.add_argument("model", nargs="?", help="model name (default: MLOPS_MODEL_NAME)")
    why.add_argument("--at", help="ISO time (UTC if no zone): the last verdict at or before it")
    infer = commands.add_parser("init", help="infer a model configuration from a data file")
    infer.add_argument("--data", required=True, help="a .csv or .parquet file")
    infer.add_argument("--target", required=True, help="the column to predict")
    infer.add_argument("--name", help="model name (default: from the file name)")
    infer.add_argument("--out", help="the YAML to write (default: NAME.yaml here)")
    infer.add_argument("--force", action="store_true", help="replace an existing file")
    infer.add_argument(
        "--register", action="store_true",
        help="store it in the registry as the model's configuration (the running stack's S3)",
    )  # fmt: skip
    own_data.add_commands(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    if arguments.command == "loop":
        from flows.loop import main as loop_main

        return loop_main(["--keep"] if arguments.keep else [])
    if arguments.command == "stack":
        return (stack_up if arguments.action == "up" else stack_down)(arguments)
    if arguments.command == "init":
        return init(arguments)
    _use_running_stack()
    if arguments.command == "rollback":
        os.environ["MLOPS_REASON"] = arguments.reason
    if arguments.command in {"promote", "rollback"}:
        return act(arguments.command)
    commands = {"serve": serve, "status": status, "history": history, "explain": explain,
                "check": own_data.check, "train": own_data.train, "drift": own_data.drift}  # fmt: skip
    return commands[arguments.command](arguments)


if __name__ == "__main__":
    sys.exit(main())
