"""The model server process: parse its arguments, build the KServe app, serve it.

Run as `python -m infra.model_server_main` (infra/model_server.py starts it so) or by
`mlops serve`: a router of the champion and a live canary, on 127.0.0.1. The same process is
the predictor of the InferenceService on Kubernetes (tasks/kserve/manifests.py): there it serves
exactly one version (`--storage-uri`, `--version` or `--alias`), one per Knative revision, with
the routing API read-only (KServe splits the traffic), bound to the pod's address.
Either way a version is served only after its manifest's signature and its file's sha256 check
out, and every request is logged to S3.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys

from tasks.decisions.routing import Routing, ServeOptions, routing_from_aliases


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a registered model on 127.0.0.1")
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1")
    parser.add_argument("--options-json", default=None, help="ServeOptions as JSON")
    parser.add_argument("--stable-version", type=int, default=None)
    parser.add_argument("--canary-version", type=int, default=None)
    parser.add_argument("--canary-percent", type=float, default=0.0)
    parser.add_argument("--plain", action="store_true", help="baseline: one version, no router")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (a pod: 0.0.0.0)")
    pinned = parser.add_mutually_exclusive_group()
    pinned.add_argument("--storage-uri", help="serve only this version: s3://BUCKET/models/M/vN/")
    pinned.add_argument("--version", type=int, help="serve only this version")
    pinned.add_argument("--alias", help="serve only the version this alias names at start")
    return parser.parse_args(argv)


STORAGE_URI = re.compile(r"s3://(?P<bucket>[^/]+)/models/(?P<model>[^/]+)/v(?P<version>[0-9]+)/?")


def pinned_version(args: argparse.Namespace, bucket: str, aliases: dict[str, int]) -> int | None:
    """The one version to serve when the process is pinned (the Kubernetes predictor), else None.

    Refuses (SystemExit with the reason) a storage URI of another bucket or model, and an alias
    that points nowhere: a predictor never guesses which model to serve.
    """
    if args.storage_uri is not None:
        match = STORAGE_URI.fullmatch(args.storage_uri)
        if match is None or (match["bucket"], match["model"]) != (bucket, args.model_name):
            raise SystemExit(
                f"refusing to serve: --storage-uri {args.storage_uri!r} is not "
                f"s3://{bucket}/models/{args.model_name}/v<N>/"
            )
        return int(match["version"])
    if args.alias is not None:
        if args.alias not in aliases:
            raise SystemExit(
                f"refusing to serve: alias {args.alias!r} of {args.model_name} points nowhere "
                f"(aliases: {aliases or 'none'})"
            )
        return aliases[args.alias]
    return args.version


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

    from tasks.modelserver.app import build_app, build_kserve_app
    from tasks.modelserver.log_writer import ServingLogWriter
    from tasks.modelserver.model import RoutedModel, RoutingRefused
    from tasks.modelserver.plain import PlainModel
    from tasks.registry.configs import configured
    from tasks.registry.versions import open_registry
    from tasks.s3 import BucketNotFound, connect
    from tasks.settings import get_settings

    settings = get_settings(model_name=args.model_name)
    options = _options(args)
    store = connect(settings)
    registry = open_registry(settings, store)
    pinned = args.storage_uri is not None or args.version is not None or args.alias is not None
    if pinned:
        try:
            aliases = registry.aliases() if args.alias is not None else {}
        except BucketNotFound as missing:
            raise SystemExit(f"refusing to serve: {missing}") from missing
        routing = Routing(stable_version=pinned_version(args, settings.bucket, aliases))
        options = options.model_copy(update={"routing": routing})
    elif not args.plain and not options.routing.versions:
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
        _, contract = configured(settings, registry)  # the model's stored contract, else the file
        model = RoutedModel(registry, contract, options, writer)
        _load_or_fall_back(model, options.routing, RoutingRefused)
        app = build_app(model, routing_writable=not pinned)
    config = uvicorn.Config(
        app,
        host=args.host,
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
