"""Benchmark the drift check against plain Evidently and against a one-pass numpy floor, and
the drift check over serving logs read from S3 as the flow reads them.

Run from the project root: `python -m bench.drift [--sizes 10000,100000,1000000,5000000]
[--evidently-max 1000000] [--agreement-rows 100000] [--log-rows 1000000] [--log-files 20]
[--reference-rows 100000] [--json PATH]` (an empty --sizes or a 0 skips that part).

Data: reference = generate_house_prices(n, seed=1), current = a drifted copy (seed=2, bigger and
older houses) — 10 columns (8 numeric incl. the price target, 2 categorical).
Time: wall clock (time.perf_counter), Evidently imported and warmed up before any timing.
Memory: peak resident set size above the baseline, read from /proc/self/status (VmHWM after the
high-water mark is reset through /proc/self/clear_refs; Linux only). Unlike tracemalloc it adds
no overhead and sees every allocation, but memory freed earlier and kept by the allocator can
hide part of a later peak.

Logged rows: `--log-rows` rows (1% of them in an unknown neighborhood, 0.2% above the contract's
max size) are written by the model server's own writer (ServingLogWriter: records_frame,
to_parquet, one object per flush, the flush triggered by its row threshold) into a real local
S3 server (SeaweedFS, infra/local_s3.py), in `--log-files` files. A fresh subprocess then reads
the last 24 hours as the drift flow does (the `load_current` task's own function: listing,
Parquet, label join, answered rows only) and runs `check_drift` on them against `--reference-rows`
reference rows. Time: wall clock of the read and of the check (exact pass + Evidently's report
on its sample), Evidently imported and warmed up first. Memory: the subprocess's peak resident
set (VmHWM, reset before each step as above), not its ru_maxrss: Linux carries the spawning
process's high-water mark across fork and exec into the child's ru_maxrss (a child of a process
that touched 800 MiB starts with ru_maxrss 813 MiB and VmHWM 13 MiB), so the parent's generated
rows would stand in for the child's peak. No tracemalloc either: it slows allocation-heavy code
and misses what Arrow allocates outside Python's allocator.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tasks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from bench.memory import memory_mib
from tasks.data.contract import DataContract, load_contract
from tasks.data.synthetic import DriftSpec, generate_house_prices
from tasks.decisions.drift import DriftPolicy, judge_drift
from tasks.drift.check import check_drift, columns_from_snapshot, evidently_report
from tasks.settings import DEFAULT_CONTRACT

DRIFTED = DriftSpec(size_shift=0.3, age_shift_years=10)
LOG_CHANGES = [("neighborhood", "lakeside", 0.01), ("size_sqft", 20_000.0, 0.002)]
LOG_BATCH = 10  # instances per logged request
LOG_RUNS = {
    "read": "read (list, Parquet, label join)",
    "check": "check (exact pass + report)",
    "exact": "  exact pass alone (no report)",
}
CASES = {
    "no drift": DriftSpec(),
    "shifted numeric": DRIFTED,
    "new categories": DriftSpec(new_category_share=0.1),
    "price level": DriftSpec(price_level=1.25),
}


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    peak_mib: float
    status: str
    start_mib: float = 0.0  # resident when it started: the absolute peak is start + peak


def measure(action: Callable[[], str]) -> Run:
    """Run once: wall and CPU seconds, peak MiB of resident memory above the start, the status."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap back, or reuse hides the peak
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    before = memory_mib()["VmRSS"]
    start, cpu = time.perf_counter(), time.process_time()
    status = action()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Run(seconds, cpu, memory_mib()["VmHWM"] - before, status, before)


def plain_evidently(ref: pd.DataFrame, cur: pd.DataFrame, contract, policy) -> str:
    """DataDriftPreset on all rows (same method and thresholds), judged by the same rules."""
    full = policy.model_copy(update={"evidently_sample_rows": max(len(ref), len(cur))})
    snapshot = evidently_report(ref, cur, contract, full)
    return judge_drift(columns_from_snapshot(snapshot, contract, policy), policy).status


def numpy_floor(ref: pd.DataFrame, cur: pd.DataFrame, contract: DataContract) -> str:
    """The least any exact statistic must do: touch every value once (a float sum per numeric
    column, a value count per categorical one). Not a drift check: the bound to compare with."""
    for frame in (ref, cur):
        for column in (*contract.columns, contract.target):
            values = frame[column.name]
            if column.is_numeric:
                np.nansum(values.to_numpy(dtype=np.float64))
            else:
                values.value_counts()
    return "—"


def warm_up(contract: DataContract, policy: DriftPolicy) -> float:
    start = time.perf_counter()
    small = generate_house_prices(500, seed=3)
    check_drift(small, generate_house_prices(500, seed=4), contract, policy)
    return time.perf_counter() - start


def bench_size(rows: int, contract, policy, evidently_max: int) -> dict[str, Run | None]:
    start = time.perf_counter()
    ref = generate_house_prices(rows, seed=1)
    cur = generate_house_prices(rows, seed=2, drift=DRIFTED)
    print(f"\n{rows:>9,} rows x 10 columns (generated in {time.perf_counter() - start:.1f} s)")
    reports = []

    def ours(with_report: bool = True) -> str:
        reports.append(check_drift(ref, cur, contract, policy, with_report=with_report))
        return reports[-1].verdict.status

    runs: dict[str, Run | None] = {
        "ours": measure(ours),
        "ours, no report": measure(lambda: ours(with_report=False)),
        "numpy floor": measure(lambda: numpy_floor(ref, cur, contract)),
        "plain Evidently": None,
    }
    if rows <= evidently_max:
        runs["plain Evidently"] = measure(lambda: plain_evidently(ref, cur, contract, policy))
    _print_size(runs, reports[0].report_agrees)
    return runs


def _print_size(runs: dict[str, Run | None], report_agrees: bool | None) -> None:
    ours, plain, floor = runs["ours"], runs["plain Evidently"], runs["numpy floor"]
    print(f"  {'':<17} {'wall':>8}    {'cpu':>8}    {'peak RSS':>12}  verdict")
    for name, run in runs.items():
        if run is None:
            print(f"  {name:<17} skipped (above --evidently-max)")
            continue
        print(f"  {name:<17} {run.seconds:8.2f} s  {run.cpu_seconds:8.2f} s  "
              f"{run.peak_mib:8.0f} MiB  {run.status}")  # fmt: skip
    bare = runs["ours, no report"]
    print(f"  ours / numpy floor: {ours.seconds / floor.seconds:.1f}x the time "
          f"({bare.seconds / floor.seconds:.1f}x without the report)")  # fmt: skip
    if plain is not None:
        agree = "agree" if plain.status == ours.status else "DISAGREE"
        print(
            f"  plain Evidently / ours: {plain.seconds / ours.seconds:.1f}x the time, "
            f"{plain.peak_mib / max(ours.peak_mib, 1):.1f}x the memory; verdicts {agree}"
        )
    print(f"  Evidently report on the sample reaches the same verdict: {report_agrees}")


def bench_agreement(rows: int, contract: DataContract, policy: DriftPolicy) -> dict[str, dict]:
    print(f"\nverdicts by case at {rows:,} rows (ours: exact, all rows; sample: our report)")
    ref = generate_house_prices(rows, seed=1)
    results = {}
    for case, spec in CASES.items():
        cur = generate_house_prices(rows, seed=2, drift=spec)
        report = check_drift(ref, cur, contract, policy)
        plain = plain_evidently(ref, cur, contract, policy)
        same = plain == report.verdict.status == report.sample_verdict.status
        results[case] = {
            "ours": report.verdict.status,
            "sample report": report.sample_verdict.status,
            "plain Evidently": plain,
            "drifted": report.verdict.drifted_columns,
            "agree": same,
        }
        print(
            f"  {case:<16} ours {report.verdict.status:<10} sample "
            f"{report.sample_verdict.status:<10} plain Evidently {plain:<10} "
            f"{'agree' if same else 'DISAGREE'}  drifted: {report.verdict.drifted_columns}"
        )
    return results


def write_logs(store, model: str, rows: int, files: int, features: list[str]) -> tuple[float, int]:
    """`rows` logged rows in `files` Parquet files through the model server's writer, stamped
    over the last 50 minutes, LOG_BATCH instances per request; seconds taken, files written."""
    from tasks.modelserver.log_writer import ServingLogWriter

    frame = generate_house_prices(rows, seed=2)
    rng = np.random.default_rng(2)
    for name, value, share in LOG_CHANGES:
        frame.loc[rng.random(rows) < share, name] = value
    per_file = -(-rows // files // LOG_BATCH) * LOG_BATCH
    inputs = [list(row) for row in zip(*(frame[name].tolist() for name in features), strict=True)]
    predictions, now = frame["price"].tolist(), time.time()
    start = time.perf_counter()
    writer = ServingLogWriter(store, model, features, flush_seconds=3600, flush_rows=per_file,
                              max_buffer_rows=rows).start()  # fmt: skip
    for first in range(0, rows, LOG_BATCH):
        at = now - 3000 * (1 - first / rows)
        last = first + LOG_BATCH
        writer.log(f"req-{first}", 1, inputs[first:last], predictions[first:last], at=at)
    if not writer.flush(timeout=1200):
        raise RuntimeError(f"serving logs not written: {writer.last_error}")
    writer.close()
    return time.perf_counter() - start, writer.files_written


def logs_child(model: str, reference_rows: int) -> None:
    """In a fresh process (S3 settings from the environment): read the last 24 hours of `model`'s
    serving logs as the flow does, check them; the figures as one JSON line on stdout."""
    import evidently  # noqa: F401  (paid once per flow run, not timed)

    from tasks.drift.stages import load_current
    from tasks.registry.versions import open_registry
    from tasks.settings import get_settings

    contract, policy = load_contract(DEFAULT_CONTRACT), DriftPolicy()
    warm_up(contract, policy)
    reference = generate_house_prices(reference_rows, seed=1)
    registry = open_registry(get_settings(model_name=model))
    held: dict[str, pd.DataFrame] = {}

    def read() -> str:
        held["current"] = load_current.fn(None, registry, contract, 24.0)
        return f"{len(held['current'])} rows"

    def check(with_report: bool = True) -> str:
        report = check_drift(reference, held["current"], contract, policy, with_report)
        held["verdict"] = report.verdict
        return report.verdict.status

    runs = {"read": measure(read), "check": measure(check)}
    runs["exact"] = measure(lambda: check(with_report=False))
    verdict = held["verdict"]
    figures = {name: asdict(run) for name, run in runs.items()}
    figures |= {
        "rows": len(held["current"]),
        "drifted": verdict.drifted_columns,
        "off_contract": {name: counts.count for name, counts in verdict.off_contract.items()},
    }
    print(json.dumps(figures))


def bench_logs(rows: int, files: int, reference_rows: int) -> dict:
    """Write `rows` logged rows into a real local S3 server, then read and check them in a
    fresh subprocess (see the module's docstring)."""
    from infra.local_s3 import local_s3
    from tasks.s3 import connect
    from tasks.settings import get_settings

    print(f"\n{rows:,} logged rows read from S3 ({files} Parquet files), "
          f"{reference_rows:,} reference rows")  # fmt: skip
    model = f"bench-logs-{uuid.uuid4().hex[:8]}"
    with local_s3("seaweedfs") as server:
        settings = get_settings(s3_endpoint=server.url, s3_access_key=server.access_key,
                                s3_secret_key=server.secret_key)  # fmt: skip
        store = connect(settings)
        store.ensure_bucket()
        features = load_contract(DEFAULT_CONTRACT).feature_names
        seconds, written = write_logs(store, model, rows, files, features)
        print(f"  {written} files written through ServingLogWriter in {seconds:.1f} s")
        child = subprocess.run(
            [sys.executable, "-m", "bench.drift", "--logs-child", model,
             "--reference-rows", str(reference_rows)],
            env={**os.environ, **server.env(), "MLOPS_MANIFEST_KEY": secrets.token_hex(32)},
            capture_output=True, text=True,
            cwd=Path(__file__).resolve().parents[1], check=False,
        )  # fmt: skip
    if child.returncode != 0:
        raise RuntimeError(f"the logs subprocess failed:\n{child.stderr[-3000:]}")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    runs = {name: Run(**figures[name]) for name in LOG_RUNS}
    print(f"  {'':<34} {'wall':>8}    {'cpu':>8}    {'RSS before':>10}  {'peak above':>10}")
    for name, run in runs.items():
        print(f"  {LOG_RUNS[name]:<34} {run.seconds:8.2f} s  {run.cpu_seconds:8.2f} s  "
              f"{run.start_mib:6.0f} MiB  {run.peak_mib:6.0f} MiB")  # fmt: skip
    peak = max(run.start_mib + run.peak_mib for run in runs.values())
    print(f"  peak resident set during read + check: {peak:.0f} MiB (VmHWM of the subprocess)")
    print(f"  {figures['rows']:,} rows: {runs['check'].status}, drifted {figures['drifted']}; "
          f"outside the contract {figures['off_contract']}")  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,5000000")
    parser.add_argument("--evidently-max", type=int, default=1_000_000)
    parser.add_argument("--agreement-rows", type=int, default=100_000)
    parser.add_argument("--log-rows", type=int, default=1_000_000)
    parser.add_argument("--log-files", type=int, default=20)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--logs-child", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.logs_child:
        return logs_child(args.logs_child, args.reference_rows)
    contract, policy = load_contract(DEFAULT_CONTRACT), DriftPolicy()
    start = time.perf_counter()
    import evidently  # noqa: F401  (timed apart: a flow pays it once per process)

    print(f"import evidently: {time.perf_counter() - start:.1f} s; "
          f"warm-up: {warm_up(contract, policy):.1f} s")  # fmt: skip
    print(f"policy: {policy.model_dump_json()}")
    sizes = {}
    for rows in (int(size) for size in args.sizes.split(",") if size):
        sizes[rows] = bench_size(rows, contract, policy, args.evidently_max)
    agreement = {}
    if args.agreement_rows:
        agreement = bench_agreement(args.agreement_rows, contract, policy)
    logs = bench_logs(args.log_rows, args.log_files, args.reference_rows) if args.log_rows else {}
    print(f"\nwhole benchmark: {time.perf_counter() - start:.0f} s")
    if args.json:
        runs = {rows: {k: v and asdict(v) for k, v in r.items()} for rows, r in sizes.items()}
        figures = {"sizes": runs, "agreement": agreement, "logs": logs}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
