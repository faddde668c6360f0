"""The local stack: S3, Prefect server, model server, deployments and a worker, on loopback.

Anything already configured (MLOPS_S3_ENDPOINT, PREFECT_API_URL) is used as it is; what this
module starts, it also stops — on normal exit, on an exception and on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from infra.local_s3 import start_s3_server
from infra.model_server import start_model_server
from infra.prefect_server import prefect_session
from infra.prefect_worker import start_worker
from infra.s3_identities import add_serving_identity, create_identities
from tasks.decisions.routing import ServeOptions
from tasks.s3 import connect
from tasks.settings import get_settings

RUNTIME_DIR = Path(__file__).resolve().parents[1] / ".runtime"


@dataclass
class LocalStack:
    s3_url: str
    prefect_ui: str
    serving_url: str | None
    runtime_dir: Path
    logs: dict[str, Path]
    # Start a model server for another model (after its configuration is stored); its URL.
    add_model_server: Callable[[str], str] | None = field(default=None, repr=False)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for this process (and the processes it starts), restoring them after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _prefect(stack: ExitStack, runtime_dir: Path) -> None:
    shutil.rmtree(runtime_dir / "prefect", ignore_errors=True)  # a fresh history per run
    stack.enter_context(prefect_session(runtime_dir / "prefect"))


@contextmanager
def local_stack(
    runtime_dir: Path = RUNTIME_DIR,
    serve: bool = True,
    worker: bool = True,
    serve_options: ServeOptions | None = None,
) -> Iterator[LocalStack]:
    """Start what is missing, point this process at it, and stop it all on the way out.

    `LocalStack.add_model_server(name)` starts a model server for another model (with a serving
    identity of its own when the stack started S3), recorded where `mlops serve` records one, so
    the worker's flow runs of that model drive its server; it is stopped with the stack."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    logs: dict[str, Path] = {}
    with ExitStack() as stack:
        serving_env: dict[str, str] = {}
        s3 = None
        if not os.environ.get("MLOPS_S3_ENDPOINT"):
            s3 = start_s3_server("seaweedfs")
            stack.callback(s3.stop)
            # Least privilege, as in production: flows act as the training identity, the model
            # server reads its own model and writes its own request logs only; the root keys
            # stay here, having created the bucket and enabled its versioning.
            configured = get_settings()
            identities = create_identities(s3, configured.model_name, configured.bucket)
            stack.enter_context(environment(identities.training.env()))
            serving_env = identities.serving.env()
        if not (os.environ.get("MLOPS_MANIFEST_KEY") or os.environ.get("MLOPS_MANIFEST_KEY_BLOCK")):
            # Like the S3 keys: a random manifest signing key per local run, never on disk.
            stack.enter_context(environment({"MLOPS_MANIFEST_KEY": secrets.token_hex(32)}))
        if not os.environ.get("PREFECT_API_URL"):
            _prefect(stack, runtime_dir)
        settings = get_settings()
        connect(settings).ensure_bucket()
        serving_url = None
        if serve:
            options = serve_options or ServeOptions(log_flush_seconds=1.0)
            server_env = {**os.environ, **serving_env}
            server = start_model_server(server_env, settings.model_name, options=options)
            stack.callback(server.stop)
            stack.enter_context(environment({"MLOPS_SERVING_URL": server.url}))
            serving_url, logs["model server"] = server.url, server.log_path
        if not os.environ.get("MLOPS_SERVING_RECORDS"):
            # Where `mlops serve` records each further model's server: the worker's flow runs
            # (deploy, canary analysis, guard, rollback of any model) find its own server there.
            records = {"MLOPS_SERVING_RECORDS": str(runtime_dir / "serving")}
            stack.enter_context(environment(records))

        def add_model_server(name: str) -> str:
            identity = {} if s3 is None else add_serving_identity(s3, name, settings.bucket).env()
            options = serve_options or ServeOptions(log_flush_seconds=1.0)
            server = start_model_server({**os.environ, **identity}, name, options=options)
            stack.callback(server.stop)
            record = Path(os.environ["MLOPS_SERVING_RECORDS"]) / f"{name}.json"
            write_serving_record(record, server.process.pid, server.url)
            stack.callback(record.unlink, missing_ok=True)
            logs[f"model server {name}"] = server.log_path
            return server.url

        if worker:
            from deployments.setup import LOCAL_POOL, setup

            setup()
            process = start_worker(LOCAL_POOL, runtime_dir / "logs")
            stack.callback(process.stop)
            logs["worker"] = process.log_path
        yield LocalStack(
            s3_url=os.environ["MLOPS_S3_ENDPOINT"],
            prefect_ui=os.environ["PREFECT_API_URL"].removesuffix("/api"),
            serving_url=serving_url,
            runtime_dir=runtime_dir,
            logs=logs,
            add_model_server=add_model_server,
        )


def write_serving_record(path: Path, pid: int, url: str) -> None:
    """Record where a model's server listens (tasks/release/target.py reads the URL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "url": url}))
