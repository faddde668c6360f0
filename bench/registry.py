"""Benchmark the S3 model registry against raw S3 puts/gets, and training time by data size.

Run from the project root: `python -m bench.registry [--server seaweedfs|minio|both]
[--sizes 10000,100000,1000000] [--repetitions 20] [--moves 10,1000,10000] [--versions 1000]
[--json PATH]`. It starts its own S3 server.

Besides register/load, it times the registry's reads as the history grows: `alias()`,
`version_at` and `history()` after 10, 1,000 and 10,000 alias moves, and `versions()` with 1,000
versions, each beside a raw GET of one object (the floor), and beside the reads as they were
before the indexes (`history_by_scan`: one GET per move; one GET per manifest). Moves are made
through `set_alias`, one after another: moves of a model take the index lease in turn, so
threads would only queue for it.
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
from datetime import UTC, datetime
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
from tasks.registry.versions import (
    DataSummary,
    IntegrityError,
    Manifest,
    ModelRegistry,
    ModelSpec,
    VersionNotFound,
)
from tasks.s3 import ObjectStore, connect
from tasks.settings import get_settings
from tasks.training.model import TrainedModel, library_versions, train_model

T = TypeVar("T")

BENCH_KEY = secrets.token_bytes(32)  # a random manifest signing key per run


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
class ReadFigures:
    """Registry reads at one size (moves in the history, or versions), against one raw GET."""

    size: int
    seed_s: float  # seconds the real API took to grow the registry to this size
    seconds: dict[str, Spread]
    ratios: dict[str, Spread]  # each read / the raw GET of the same round


@dataclass(frozen=True)
class ServerFigures:
    registry: RegistryFigures
    alias_reads: list[ReadFigures]
    versions: ReadFigures | None


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
            kind = "index" if "/index/" in key else kind
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

    def list_keys(
        self, prefix: str, recursive: bool = True, start_after: str | None = None
    ) -> Iterator[str]:
        listing = super().list_keys
        return iter(
            self._timed("list", prefix, lambda: list(listing(prefix, recursive, start_after)))
        )

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
    index = register_parts.get("get index", 0.0) + register_parts.get("put index", 0.0)
    fetch = load_parts.get("get manifest", 0.0) + load_parts.get("get model", 0.0)
    return {
        "register": register, "load": load, "requests": float(requests),
        "register: claim protocol": claim, "register: upload model+manifest": upload,
        "register: versions index (get+put)": index,
        "register: local (dump, sha256, manifest)": register - claim - upload - index,
        "load: get manifest+model": fetch, "load: local (sha256, joblib.load)": load - fetch,
    }  # fmt: skip


def measure_registry(
    server: ServerKind, store: ObjectStore, trained: TrainedModel, spec: ModelSpec, reps: int
) -> RegistryFigures:
    """Median and p95 of register/load and raw put/get over `reps` rounds (after one warm-up)."""
    timed = TimedStore(store)
    registry = ModelRegistry(timed, "bench-model", BENCH_KEY)  # signed, as in production
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
    kind: ServerKind, trained: TrainedModel, spec: ModelSpec, args: argparse.Namespace
) -> ServerFigures:
    """Start a fresh S3 server, measure the registry on it, and always stop it."""
    server = start_s3_server(kind)
    try:
        settings = get_settings(
            s3_endpoint=server.url, s3_access_key=server.access_key, s3_secret_key=server.secret_key
        )
        store = connect(settings)
        store.ensure_bucket()
        figures = measure_registry(kind, store, trained, spec, args.repetitions)
        moves = [int(size) for size in args.moves.split(",") if size.strip()]
        alias_reads = measure_alias_reads(store, moves, args.read_repetitions)
        versions = (
            measure_versions(store, spec, args.versions, args.read_repetitions)
            if args.versions
            else None
        )
        return ServerFigures(figures, alias_reads, versions)
    finally:
        server.stop()


# -- reads as the registry grows ----------------------------------------------------------------
ALIASES = ("champion", "canary", "previous")
OLD_READS_BUDGET = 20_000  # GETs the index-less reads may spend per operation and size


def tiny_model() -> object:
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])


def seed_moves(registry: ModelRegistry, start: int, stop: int) -> float:
    """Moves number start..stop-1 through set_alias (each alias in turn flips between v1 and
    v2, so every call moves it); the seconds they took."""
    started = time.perf_counter()
    for number in range(start, stop):
        alias = ALIASES[number % len(ALIASES)]
        registry.set_alias(alias, 1 + (number // len(ALIASES)) % 2, f"bench move {number}")
        if number and number % 1000 == 0:
            print(f"  {number:,} moves made", file=sys.stderr, flush=True)
    return time.perf_counter() - started


def old_version_at(registry: ModelRegistry, alias: str, when: datetime) -> int | None:
    """version_at before the index: a walk over the whole history, read one object per move."""
    version = None
    for move in registry.book.history_by_scan():
        if move.alias == alias and move.at <= when:
            version = move.to_version
    return version


def old_versions(registry: ModelRegistry) -> list[Manifest]:
    """versions() before the index: list the version folders, read and verify every manifest."""
    keys = registry.store.list_keys(registry.prefix, recursive=False)
    found = []
    for key in keys:
        folder = key.rstrip("/").rsplit("/", 1)[-1]
        if folder[:1] == "v" and folder[1:].isdigit():
            try:
                found.append(registry.manifest(int(folder[1:])))
            except (VersionNotFound, IntegrityError):
                continue
    return sorted(found, key=lambda manifest: manifest.version)


def time_reads(
    store: ObjectStore, floor_key: str, reads: dict[str, Callable[[], object]], reps: int
) -> tuple[dict[str, Spread], dict[str, Spread]]:
    """Each read `reps` times beside a raw GET of `floor_key` (after one warm-up round)."""
    samples: dict[str, list[float]] = defaultdict(list)
    for round_number in range(reps + 1):
        for name, read in {"raw GET": lambda: store.get_bytes(floor_key), **reads}.items():
            started = time.perf_counter()
            read()
            if round_number:
                samples[name].append(time.perf_counter() - started)
    seconds = {name: Spread.of(values) for name, values in samples.items()}
    ratios = {
        name: Spread.of([v / g for v, g in zip(values, samples["raw GET"], strict=True)])
        for name, values in samples.items()
    }
    return seconds, ratios


def measure_alias_reads(store: ObjectStore, sizes: list[int], reps: int) -> list[ReadFigures]:
    """alias(), version_at and history() at each history length, now and before the index."""
    registry = ModelRegistry(store, "bench-aliases", BENCH_KEY)
    for _ in range(2):
        registry.register(tiny_model(), tiny_spec())
    figures, made = [], 0
    for size in sorted(sizes):
        seed_s = seed_moves(registry, made, size)
        made = size
        figures.append(alias_reads_at(registry, size, seed_s, reps))
        print(f"  reads at {size:,} moves measured", file=sys.stderr, flush=True)
    return figures


def alias_reads_at(registry: ModelRegistry, size: int, seed_s: float, reps: int) -> ReadFigures:
    """The reads at one history length; the index-less ones only as often as OLD_READS_BUDGET
    GETs allow (at least once)."""
    history = registry.history()
    assert history == registry.book.history_by_scan() and len(history) == size
    middle, now = history[size // 2].at, datetime.now(UTC)
    floor = f"{registry.prefix}aliases/champion.json"
    reads: dict[str, Callable[[], object]] = {
        "alias()": lambda: registry.alias("champion"),
        "version_at(now)": lambda: registry.version_at("champion", now),
        "version_at(middle)": lambda: registry.version_at("champion", middle),
        "history()": registry.history,
    }
    seconds, ratios = time_reads(registry.store, floor, reads, reps)
    old: dict[str, Callable[[], object]] = {
        "before: history()": registry.book.history_by_scan,
        "before: version_at(now)": lambda: old_version_at(registry, "champion", now),
    }
    old_reps = max(1, min(reps, OLD_READS_BUDGET // size))
    old_seconds, old_ratios = time_reads(registry.store, floor, old, old_reps)
    return ReadFigures(size, seed_s, seconds | old_seconds, ratios | old_ratios)


def tiny_spec() -> ModelSpec:
    return ModelSpec(features=["x"], target="y", metrics={"r2": 1.0},
                     data=DataSummary(digest="bench", rows=2), contract={"name": "bench"},
                     git_revision="bench", params={}, library_versions={})  # fmt: skip


def measure_versions(store: ObjectStore, spec: ModelSpec, count: int, reps: int) -> ReadFigures:
    """versions() with `count` versions (a tiny model, the reference model's manifest), now
    and before the index."""
    registry = ModelRegistry(store, "bench-versions", BENCH_KEY)
    started = time.perf_counter()
    for number in range(count):
        registry.register(tiny_model(), spec)
        if number and number % 250 == 0:
            print(f"  {number:,} versions registered", file=sys.stderr, flush=True)
    seed_s = time.perf_counter() - started
    assert registry.versions() == old_versions(registry)
    floor = f"{registry.prefix}v1/manifest.json"
    seconds, ratios = time_reads(store, floor, {"versions()": registry.versions}, reps)
    old_reps = max(1, min(reps, OLD_READS_BUDGET // count))
    old_seconds, old_ratios = time_reads(
        store, floor, {"before: versions()": lambda: old_versions(registry)}, old_reps
    )
    return ReadFigures(count, seed_s, seconds | old_seconds, ratios | old_ratios)


def measure_training(contract: DataContract, sizes: list[int], seed: int) -> list[TrainingFigures]:
    """Generation and training seconds for each data size, measured separately."""
    figures = []
    for rows in sizes:
        started = time.perf_counter()
        frame = generate_house_prices(rows, seed)
        generate_s = time.perf_counter() - started
        trained = train_model(frame, contract, seed)
        del frame
        pipeline = getattr(trained.model, "regressor_", trained.model)  # log transform or not
        booster = pipeline.named_steps["regressor"]
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


def print_reads(server: str, alias_reads: list[ReadFigures], versions: ReadFigures | None) -> None:
    print(f"\n== registry reads as it grows, on {server}: median and p95 ms; x one raw GET ==")
    print(f"{'size':>8}  {'read':<26}{'median ms':>11}{'p95 ms':>10}{'x raw GET':>11}")
    rows = [("moves", figures) for figures in alias_reads]
    rows += [("versions", versions)] if versions is not None else []
    for unit, figures in rows:
        print(f"{figures.size:>8,}  {unit} made through the API in {figures.seed_s:.1f}s")
        for name, spread in figures.seconds.items():
            ratio = figures.ratios[name].median
            print(f"{figures.size:>8,}  {name:<26}{spread.median * 1e3:>11.2f}"
                  f"{spread.p95 * 1e3:>10.2f}{ratio:>10.1f}x")  # fmt: skip
        for name in figures.seconds:
            if name.startswith("before: ") and name[8:] in figures.seconds:
                gain = figures.seconds[name].median / figures.seconds[name[8:]].median
                print(f"{figures.size:>8,}  {name[8:]} is {gain:,.0f}x faster than before")


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
    parser.add_argument("--moves", default="10,1000,10000",
                        help="history lengths for the alias reads; empty to skip")  # fmt: skip
    parser.add_argument("--versions", type=int, default=1000,
                        help="versions for the versions() read; 0 to skip")  # fmt: skip
    parser.add_argument("--read-repetitions", type=int, default=20, help="rounds per read")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, help="cap training's OpenMP/BLAS threads")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.repetitions < 1 or args.read_repetitions < 1:
        parser.error("--repetitions and --read-repetitions must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the servers
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    contract = load_contract(get_settings().contract_path)
    trained, spec = reference_model(contract, args.model_rows, args.seed)
    kinds: list[ServerKind] = ["seaweedfs", "minio"] if args.server == "both" else [args.server]
    servers = [bench_server(kind, trained, spec, args) for kind in kinds]
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    with threadpool_limits(args.threads):  # None: no cap, as the flows train
        training = measure_training(contract, sizes, args.seed)
    for figures in servers:
        print_registry(figures.registry)
        print_reads(figures.registry.server, figures.alias_reads, figures.versions)
    if training:
        print_training(training, args.threads or os.cpu_count())
    elapsed = time.perf_counter() - started
    load = os.getloadavg()[0]  # other work on the machine skews every figure above
    print(f"\ntotal wall time {elapsed:.0f}s; 1-min load average {load_before:.2f} -> {load:.2f}")
    sys.stdout.flush()
    if args.json:
        report = {
            "registry": [asdict(figures) for figures in servers],
            "training": [asdict(row) for row in training],
            "wall_seconds": elapsed,
            "load_average_1min": [load_before, load],
        }
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
