"""Benchmark the S3 model registry against raw S3 puts/gets, and training time by data size.

Run from the project root: `python -m bench.registry [--server seaweedfs|minio|both]
[--sizes 10000,100000,1000000] [--repetitions 20] [--json PATH]`. It starts its own S3 server.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import secrets
import signal
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

if __package__ in (None, ""):  # run as a file: make `tasks` and `infra` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import joblib
import pandas as pd
from threadpoolctl import threadpool_limits

from infra.local_s3 import start_s3_server
from infra.s3_commands import ServerKind
from tasks.data.contract import DataContract, load_contract
from tasks.data.synthetic import generate_house_prices
from tasks.registry.versions import DataSummary, ModelRegistry, ModelSpec
from tasks.s3 import ObjectStore, connect
from tasks.settings import get_settings
from tasks.training.model import TrainedModel, library_versions, train_model

T = TypeVar("T")


@dataclass(frozen=True)
class Spread:
    median: float
    p95: float  # nearest rank

    @classmethod
    def of(cls, samples: list[float]) -> Spread:
        ordered = sorted(samples)
        return cls(statistics.median(ordered), ordered[math.ceil(0.95 * len(ordered)) - 1])


@dataclass(frozen=True)
class RegistryFigures:
    server: str
    model_bytes: int
    repetitions: int
    seconds: dict[str, Spread]  # register, raw_put, load, raw_get
    ratios: dict[str, Spread]  # register/raw_put and load/raw_get, per repetition
    parts_median_s: dict[str, float]  # where register and load spend their time
    requests_per_register: int


@dataclass(frozen=True)
class TrainingFigures:
    rows: int
    generate_s: float
    train_s: float
    rows_per_s: float
    boosting_iterations: int


class TimedStore(ObjectStore):
    """An ObjectStore that adds up seconds and requests per (operation, kind of key)."""

    def __init__(self, store: ObjectStore) -> None:
        super().__init__(store.client, store.bucket, store.endpoint)
        self.seconds: dict[str, float] = defaultdict(float)
        self.requests = 0

    def _timed(self, operation: str, key: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return call()
        finally:
            kind = "claim" if "/claims/" in key else key.rsplit("/", 1)[-1].split(".")[0]
            self.seconds[f"{operation} {kind}"] += time.perf_counter() - started
            self.requests += 1

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        put = super().put_bytes
        return self._timed("put", key, lambda: put(key, data, content_type))

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        get = super().get_bytes
        return self._timed("get", key, lambda: get(key, version_id))

    def list_keys(self, prefix: str, recursive: bool = True) -> Iterator[str]:
        listing = super().list_keys
        return iter(self._timed("list", prefix, lambda: list(listing(prefix, recursive))))

    def delete(self, key: str) -> None:
        delete = super().delete
        self._timed("delete", key, lambda: delete(key))

    def take(self) -> tuple[dict[str, float], int]:
        """The totals since the last call, then start again from zero."""
        totals, requests = dict(self.seconds), self.requests
        self.seconds.clear()
        self.requests = 0
        return totals, requests


def reference_model(contract: DataContract, rows: int, seed: int) -> tuple[TrainedModel, ModelSpec]:
    """The model every registry round stores: trained once on generated data."""
    frame = generate_house_prices(rows, seed)
    trained = train_model(frame, contract, seed)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    spec = ModelSpec(
        features=contract.feature_names,
        target=contract.target.name,
        metrics={"train_seconds": trained.seconds},
        data=DataSummary(digest=digest.hexdigest(), rows=rows, source="bench"),
        contract={"name": contract.name, "digest": contract.digest()},
        git_revision="bench",
        params=trained.params,
        library_versions=library_versions(),
        reason="benchmark",
    )
    return trained, spec


def raw_round(store: ObjectStore, payload: bytes) -> dict[str, float]:
    """Seconds for one plain put and get of the model bytes: the floor for register and load."""
    key = f"bench/raw/{secrets.token_hex(8)}.joblib"
    started = time.perf_counter()
    store.put_bytes(key, payload)
    put_done = time.perf_counter()
    if store.get_bytes(key) != payload:
        raise RuntimeError("raw get returned different bytes than were put")
    return {"raw_put": put_done - started, "raw_get": time.perf_counter() - put_done}


def registry_round(
    registry: ModelRegistry, store: TimedStore, trained: TrainedModel, spec: ModelSpec
) -> dict[str, float]:
    """Seconds for one register and one load of the model, split into S3 and local parts."""
    store.take()
    started = time.perf_counter()
    manifest = registry.register(trained.model, spec)
    register = time.perf_counter() - started
    register_parts, requests = store.take()
    started = time.perf_counter()
    registry.load(manifest.version)
    load = time.perf_counter() - started
    load_parts, _ = store.take()
    claim = sum(value for key, value in register_parts.items() if "claim" in key)
    upload = register_parts.get("put model", 0.0) + register_parts.get("put manifest", 0.0)
    fetch = load_parts.get("get manifest", 0.0) + load_parts.get("get model", 0.0)
    return {
        "register": register, "load": load, "requests": float(requests),
        "register: claim protocol": claim, "register: upload model+manifest": upload,
        "register: local (dump, sha256, manifest)": register - claim - upload,
        "load: get manifest+model": fetch, "load: local (sha256, joblib.load)": load - fetch,
    }  # fmt: skip


def measure_registry(
    server: ServerKind, store: ObjectStore, trained: TrainedModel, spec: ModelSpec, reps: int
) -> RegistryFigures:
    """Median and p95 of register/load and raw put/get over `reps` rounds (after one warm-up)."""
    timed = TimedStore(store)
    registry = ModelRegistry(timed, "bench-model")
    buffer = io.BytesIO()
    joblib.dump(trained.model, buffer)
    payload = buffer.getvalue()
    samples: dict[str, list[float]] = defaultdict(list)
    for round_number in range(reps + 1):  # round 0 warms up connections and is dropped
        figures = raw_round(store, payload) | registry_round(registry, timed, trained, spec)
        for key, value in figures.items():
            if round_number:
                samples[key].append(value)
    ratios = {
        "register/raw_put": [
            r / p for r, p in zip(samples["register"], samples["raw_put"], strict=True)
        ],
        "load/raw_get": [r / g for r, g in zip(samples["load"], samples["raw_get"], strict=True)],
    }
    return RegistryFigures(
        server=server,
        model_bytes=len(payload),
        repetitions=reps,
        seconds={
            key: Spread.of(samples[key]) for key in ("register", "raw_put", "load", "raw_get")
        },
        ratios={key: Spread.of(values) for key, values in ratios.items()},
        parts_median_s={key: statistics.median(v) for key, v in samples.items() if ":" in key},
        requests_per_register=round(statistics.median(samples["requests"])),
    )


def bench_server(
    kind: ServerKind, trained: TrainedModel, spec: ModelSpec, reps: int
) -> RegistryFigures:
    """Start a fresh S3 server, measure the registry on it, and always stop it."""
    server = start_s3_server(kind)
    try:
        settings = get_settings(
            s3_endpoint=server.url, s3_access_key=server.access_key, s3_secret_key=server.secret_key
        )
        store = connect(settings)
        store.ensure_bucket()
        return measure_registry(kind, store, trained, spec, reps)
    finally:
        server.stop()


def measure_training(contract: DataContract, sizes: list[int], seed: int) -> list[TrainingFigures]:
    """Generation and training seconds for each data size, measured separately."""
    figures = []
    for rows in sizes:
        started = time.perf_counter()
        frame = generate_house_prices(rows, seed)
        generate_s = time.perf_counter() - started
        trained = train_model(frame, contract, seed)
        del frame
        booster = trained.model.regressor_.named_steps["regressor"]
        figures.append(
            TrainingFigures(
                rows, generate_s, trained.seconds, rows / trained.seconds, booster.n_iter_
            )
        )
        print(f"  trained on {rows:,} rows in {trained.seconds:.1f}s", file=sys.stderr, flush=True)
    return figures


def print_registry(figures: RegistryFigures) -> None:
    print(f"\n== registry on {figures.server}: model {figures.model_bytes / 1024:.0f} KiB, "
          f"{figures.repetitions} reps, {figures.requests_per_register} S3 requests/register ==")  # fmt: skip
    print(f"{'operation':<42}{'median ms':>11}{'p95 ms':>10}")
    for key, spread in figures.seconds.items():
        print(f"{key:<42}{spread.median * 1e3:>11.1f}{spread.p95 * 1e3:>10.1f}")
    for key, seconds in figures.parts_median_s.items():
        print(f"  {key:<40}{seconds * 1e3:>11.1f}")
    print(f"{'ratio':<42}{'median':>11}{'p95':>10}")
    for key, spread in figures.ratios.items():
        print(f"{key:<42}{spread.median:>10.1f}x{spread.p95:>9.1f}x")


def print_training(figures: list[TrainingFigures], threads: int | None) -> None:
    print(f"\n== training (HistGradientBoosting, {os.cpu_count()} cores, threads={threads}) ==\n"
          f"{'rows':>10}{'generate s':>12}{'train s':>10}{'rows/s':>12}{'iters':>7}")  # fmt: skip
    for row in figures:
        print(f"{row.rows:>10,}{row.generate_s:>12.2f}{row.train_s:>10.2f}"
              f"{row.rows_per_s:>12,.0f}{row.boosting_iterations:>7}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", "--servers", choices=["seaweedfs", "minio", "both"],
                        default="seaweedfs", help="S3 server to start (both: one after the other)")  # fmt: skip
    parser.add_argument("--repetitions", "-n", type=int, default=20, help="registry rounds")
    parser.add_argument("--model-rows", type=int, default=20_000, help="rows for the stored model")
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated training sizes; empty to skip")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, help="cap training's OpenMP/BLAS threads")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the servers
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    contract = load_contract(get_settings().contract_path)
    trained, spec = reference_model(contract, args.model_rows, args.seed)
    kinds: list[ServerKind] = ["seaweedfs", "minio"] if args.server == "both" else [args.server]
    registry = [bench_server(kind, trained, spec, args.repetitions) for kind in kinds]
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    with threadpool_limits(args.threads):  # None: no cap, as the flows train
        training = measure_training(contract, sizes, args.seed)
    for figures in registry:
        print_registry(figures)
    if training:
        print_training(training, args.threads or os.cpu_count())
    elapsed = time.perf_counter() - started
    load = os.getloadavg()[0]  # other work on the machine skews every figure above
    print(f"\ntotal wall time {elapsed:.0f}s; 1-min load average {load_before:.2f} -> {load:.2f}")
    sys.stdout.flush()
    if args.json:
        report = {
            "registry": [asdict(figures) for figures in registry],
            "training": [asdict(row) for row in training],
            "wall_seconds": elapsed,
            "load_average_1min": [load_before, load],
        }
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
