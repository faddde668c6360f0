"""Start and stop the local KServe model server on 127.0.0.1, like infra/local_s3.py does for S3.

`start_model_server` runs `python -m infra.model_server ...` in a subprocess and waits until it
answers; `__main__` builds the app (tasks/modelserver/app.py) and serves it with uvicorn on loopback.
S3 credentials reach the child only through its environment (MLOPS_S3_*), never its arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from infra.processes import answers, free_port, kill, launch, log_tail, stop, wait_until
from tasks.decisions.routing import Routing, ServeOptions, routing_from_aliases

REPO_ROOT = Path(__file__).resolve().parents[1]


class ModelServerError(RuntimeError):
    """The model server could not be started; the message holds the end of its log."""


@dataclass
class ModelServer:
    """A running model server process on 127.0.0.1."""

    model_name: str
    port: int
    process: subprocess.Popen = field(repr=False)
    log_path: Path
    # What started it, so `restart` runs the same server again on the same port.
    command: list[str] = field(default_factory=list, repr=False)
    process_env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        return log_tail(self.log_path, chars)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (uvicorn drains, serving logs are flushed), then SIGKILL if it hangs."""
        return stop(self.process, timeout)

    def kill(self) -> None:
        """Crash it: SIGKILL, no drain and no last flush (unflushed serving logs are lost)."""
        kill(self.process)

    def restart(self, ready_timeout: float = 120.0) -> None:
        """Start the same command again (same port and options) once the process has exited."""
        if self.process.poll() is None:
            raise ModelServerError("the model server is still running: kill() or stop() it first")
        if not self.command:
            raise ModelServerError("not started by start_model_server: cannot restart it")
        self.process = launch(self.command, self.process_env, REPO_ROOT, self.log_path)
        _wait_ready(self, ready_timeout)


def start_model_server(
    settings_env: dict[str, str],
    model_name: str,
    port: int | None = None,
    options: ServeOptions | None = None,
    plain: bool = False,
    ready_timeout: float = 120.0,
) -> ModelServer:
    """Start the server for `model_name` (routed, or `plain` for the benchmark baseline)."""
    port = port or free_port()
    options = options or ServeOptions()
    log_path = Path(tempfile.mkdtemp(prefix="mlops-model-server-")) / "server.log"
    command = [
        *(sys.executable, "-m", "infra.model_server", "--model-name", model_name),
        *("--port", str(port), "--options-json", options.model_dump_json()),
    ]
    if plain:
        command.append("--plain")
    env = {**os.environ, **{key: str(value) for key, value in settings_env.items()}}
    process = launch(command, env, REPO_ROOT, log_path)
    server = ModelServer(model_name, port, process, log_path, command, env)
    _wait_ready(server, ready_timeout)
    return server


def _wait_ready(server: ModelServer, timeout: float) -> None:
    probe = answers(f"{server.url}/v2/health/ready", lambda status: status == 200)
    wait_until(server.process, probe, timeout, "model server", server.log_path, ModelServerError)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a registered model on 127.0.0.1")
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1")
    parser.add_argument("--options-json", default=None, help="ServeOptions as JSON")
    parser.add_argument("--stable-version", type=int, default=None)
    parser.add_argument("--canary-version", type=int, default=None)
    parser.add_argument("--canary-percent", type=float, default=0.0)
    parser.add_argument("--plain", action="store_true", help="baseline: one version, no router")
    return parser.parse_args(argv)


def _options(args: argparse.Namespace) -> ServeOptions:
    options = ServeOptions.model_validate_json(args.options_json or "{}")
    if args.stable_version is not None:
        routing = Routing(
            stable_version=args.stable_version,
            canary_version=args.canary_version,
            canary_percent=args.canary_percent,
        )
        options = options.model_copy(update={"routing": routing})
    return options


def _load_or_fall_back(model, routing: Routing, refused_error: type[Exception]) -> None:
    """Load the split; if only the canary is refused, serve the stable version alone: a
    restart must never take the champion down with a canary that no longer loads."""
    try:
        model.load()
    except refused_error as refused:
        if routing.canary_version is None:
            raise SystemExit(f"refusing to serve: {refused}") from refused
        logging.getLogger(__name__).warning(
            "canary v%d refused at start (%s): serving v%d alone",
            routing.canary_version, refused, routing.stable_version,
        )  # fmt: skip
        try:
            model.apply_routing(Routing(stable_version=routing.stable_version))
        except refused_error as again:
            raise SystemExit(f"refusing to serve: {again}") from again
        model.load()


def serve(args: argparse.Namespace) -> int:
    """Build the served model and the app, serve on 127.0.0.1 until SIGTERM, flush the logs."""
    import uvicorn

    from tasks.data.contract import load_contract
    from tasks.modelserver.app import build_app, build_kserve_app
    from tasks.modelserver.logs import ServingLogWriter
    from tasks.modelserver.model import RoutedModel, RoutingRefused
    from tasks.modelserver.plain import PlainModel
    from tasks.registry.versions import open_registry
    from tasks.s3 import BucketNotFound, connect
    from tasks.settings import get_settings

    settings = get_settings(model_name=args.model_name)
    options = _options(args)
    store = connect(settings)
    registry = open_registry(settings, store)
    if not args.plain and not options.routing.versions:
        # No split pinned on the command line: serve what the aliases say, so a server that
        # crashed and restarts comes back to the champion (and a live canary) on its own.
        try:
            aliases = registry.aliases()
        except BucketNotFound as missing:
            raise SystemExit(f"refusing to serve: {missing}") from missing
        routing = routing_from_aliases(aliases, settings.canary_percent)
        options = options.model_copy(update={"routing": routing})
    writer = None
    if args.plain:
        if options.routing.stable_version is None:
            raise SystemExit("--plain needs a stable version to serve")
        model = PlainModel(registry, options.routing.stable_version)
        model.load()
        app = build_kserve_app(model)
    else:
        if options.log_requests:
            writer = ServingLogWriter(
                store,
                settings.model_name,
                flush_seconds=options.log_flush_seconds,
                flush_rows=options.log_flush_rows,
            ).start()
        model = RoutedModel(registry, load_contract(settings.contract_path), options, writer)
        _load_or_fall_back(model, options.routing, RoutingRefused)
        app = build_app(model)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    # uvicorn drains on SIGTERM, restores the handler it found and raises the signal again:
    # finding this one, the process exits normally, so the serving logs get their last flush.
    signal.signal(signal.SIGTERM, _exit_normally)
    try:
        uvicorn.Server(config).run()
    finally:
        if writer is not None:
            writer.close()
    return 0


def _exit_normally(signum: int, frame: object) -> None:
    raise SystemExit(0)


def limit_model_threads(threads: int) -> None:
    """Cap OpenMP/BLAS threads before numpy or scikit-learn load.

    One request is a row or a few; parallel regions that size cost more than they save, and on
    a busy machine OpenMP's spinning threads multiplied the CPU per request by ten or more.
    """
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


class _BadRequestsInOneLine(logging.Filter):
    """kserve logs every 400 with a traceback; a bad request is the client's, one line will do."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if type(error).__name__ in {"InvalidInput", "ModelNotFound"}:  # 400 and 404
            record.msg, record.args, record.exc_info = f"bad request: {error}", (), None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    # kserve.model_server parses sys.argv when imported: hand it nothing of ours.
    sys.argv = sys.argv[:1]
    limit_model_threads(_options(args).model_threads)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("kserve").addFilter(_BadRequestsInOneLine())
    return serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
