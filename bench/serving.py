"""Benchmark: single-row V1 predictions, (a) in-process floor, (b) plain KServe, (c) our router.

Everything runs on loopback: a SeaweedFS server, one model trained on generated rows, and model
servers started by infra/model_server.py. Each case sends at most `--requests` requests (after a
warm-up) or runs `--seconds`, whichever ends first, from `--concurrency` client threads.

    python -m bench.serving --requests 3000 --concurrency 8 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.local_s3 import start_s3_server
from infra.model_server import start_model_server
from infra.model_server_main import limit_model_threads
from tasks.decisions.routing import Routing, ServeOptions


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float | None = None

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        cpu = f"{self.cpu_ms_per_request:6.2f}" if self.cpu_ms_per_request is not None else "   n/a"
        return (
            f"{self.name:<34} {self.throughput:8.1f} req/s  p50 {self.p50_ms:6.2f} ms  "
            f"p99 {self.p99_ms:7.2f} ms  server CPU {cpu} ms/req  "
            f"({self.requests} requests, {self.errors} errors)"
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), robust to a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(
    name: str, call: Callable[[int], bool], args: argparse.Namespace, pid: int | None = None
) -> Result:
    """`call(i)` from `args.concurrency` threads until `args.requests` or `args.seconds` is spent.

    With `pid`, also the CPU time that process spent per measured request.
    """
    for i in range(args.warmup):
        call(i)
    cpu_before = cpu_seconds(pid) if pid else 0.0
    lock, latencies, errors, issued = threading.Lock(), [], [0], [0]
    deadline = time.monotonic() + args.seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= args.requests:
                    return
                issued[0] += 1
                index = issued[0]
            started = time.perf_counter()
            ok = call(index)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    cpu = (cpu_seconds(pid) - cpu_before) * 1000 / len(latencies) if pid else None
    cuts = statistics.quantiles(latencies, n=100)
    return Result(name, len(latencies), errors[0], seconds, cuts[49], cuts[98], cpu)


def http_caller(url: str, instances: list[list]) -> Callable[[int], bool]:
    clients = threading.local()

    def call(i: int) -> bool:
        if not hasattr(clients, "http"):
            clients.http = httpx.Client(timeout=30)
        body = {"instances": [instances[i % len(instances)]]}
        return clients.http.post(url, json=body).status_code == 200

    return call


def _register(s3_env: dict[str, str]):
    """Train one model on generated rows and register it twice (stable and canary)."""
    from tasks.data.contract import load_contract
    from tasks.data.synthetic import generate_house_prices
    from tasks.registry.versions import DataSummary, ModelRegistry, ModelSpec
    from tasks.s3 import connect
    from tasks.settings import get_settings
    from tasks.training.model import library_versions, train_model

    settings = get_settings(
        s3_endpoint=s3_env["MLOPS_S3_ENDPOINT"],
        s3_access_key=s3_env["MLOPS_S3_ACCESS_KEY"],
        s3_secret_key=s3_env["MLOPS_S3_SECRET_KEY"],
    )
    store = connect(settings)
    store.ensure_bucket()
    contract = load_contract(settings.contract_path)
    frame = generate_house_prices(1500, seed=1)
    model = train_model(frame, contract, seed=1).model
    # Signed, as in production; the model servers it starts inherit the key from the environment.
    os.environ.setdefault("MLOPS_MANIFEST_KEY", secrets.token_hex(32))
    key = os.environ["MLOPS_MANIFEST_KEY"].encode()
    registry = ModelRegistry(store, f"bench-{uuid.uuid4().hex[:6]}", key)
    spec = ModelSpec(
        features=contract.feature_names,
        target=contract.target.name,
        metrics={},
        data=DataSummary(digest="bench", rows=len(frame)),
        contract={},
        git_revision="bench",
        params={},
        library_versions=library_versions(),
    )
    # The same model twice, so the canary costs what stable costs: only routing differs.
    versions = registry.register(model, spec).version, registry.register(model, spec).version
    return registry.name, model, contract.feature_names, frame, versions


@dataclass(frozen=True)
class Target:
    """What every served case shares: the S3 server, the model name, the request rows."""

    s3_env: dict[str, str]
    name: str
    instances: list[list]
    args: argparse.Namespace


def _serve_and_load(target: Target, label: str, options: ServeOptions, plain: bool) -> Result:
    server = start_model_server(target.s3_env, target.name, options=options, plain=plain)
    try:
        call = http_caller(f"{server.url}/v1/models/{target.name}:predict", target.instances)
        result = run_load(label, call, target.args, server.process.pid)
        if not plain:
            print("   serving logs:", httpx.get(f"{server.url}/mlops/v1/stats").json()["logs"])
    finally:
        server.stop()
    print(result.line(), flush=True)
    return result


def _summary(results: list[Result]) -> None:
    def pick(kind: str, value: Callable[[Result], float]) -> list[float]:
        return [value(r) for r in results if r.name.startswith(kind)]

    for how, reduce in (("best", max), ("median", statistics.median)):
        ratio = reduce(pick("(c)", lambda r: r.throughput)) / reduce(
            pick("(b)", lambda r: r.throughput)
        )
        print(f"(c)/(b) throughput, {how} of rounds: {ratio:.3f}")
    cpu_c = statistics.median(pick("(c)", lambda r: r.cpu_ms_per_request))
    cpu_b = statistics.median(pick("(b)", lambda r: r.cpu_ms_per_request))
    print(f"(c)/(b) server CPU per request, median of rounds: {cpu_c / cpu_b:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per case")
    parser.add_argument("--seconds", type=float, default=45.0, help="time limit per case")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests first")
    parser.add_argument("--rounds", type=int, default=2, help="alternate (b) and (c) this often")
    args = parser.parse_args(argv)
    # The floor runs with the same one thread per prediction as the servers (before sklearn loads).
    limit_model_threads(1)
    from tasks.modelserver.model import predict_rows

    s3 = start_s3_server()
    try:
        name, model, features, frame, (stable, canary) = _register(s3.env())
        instances = frame[features].values.tolist()
        floor = run_load(
            "(a) in-process model.predict",
            lambda i: bool(predict_rows(model, [instances[i % len(instances)]], features)),
            args,
        )
        print(floor.line(), flush=True)
        split = Routing(stable_version=stable, canary_version=canary, canary_percent=20)
        cases = [
            ("(b) plain KServe", ServeOptions(routing=Routing(stable_version=stable)), True),
            ("(c) router 20% canary + S3 logs", ServeOptions(routing=split), False),
        ]
        target = Target(s3.env(), name, instances, args)
        results = [floor]
        for round_ in range(1, args.rounds + 1):
            for label, options, plain in cases:
                results.append(_serve_and_load(target, f"{label} #{round_}", options, plain))
        _summary(results)
    finally:
        s3.stop()


if __name__ == "__main__":
    main()
