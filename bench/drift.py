"""Benchmark the drift check against plain Evidently and against a one-pass numpy floor.

Run from the project root: `python -m bench.drift [--sizes 10000,100000,1000000,5000000]
[--evidently-max 1000000] [--agreement-rows 100000] [--json PATH]`.

Data: reference = generate_house_prices(n, seed=1), current = a drifted copy (seed=2, bigger and
older houses) — 10 columns (8 numeric incl. the price target, 2 categorical).
Time: wall clock (time.perf_counter), Evidently imported and warmed up before any timing.
Memory: peak resident set size above the baseline, read from /proc/self/status (VmHWM after the
high-water mark is reset through /proc/self/clear_refs; Linux only). Unlike tracemalloc it adds
no overhead and sees every allocation, but memory freed earlier and kept by the allocator can
hide part of a later peak.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tasks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from tasks.data.contract import DataContract, load_contract
from tasks.data.synthetic import DriftSpec, generate_house_prices
from tasks.decisions.drift import DriftPolicy, judge_drift
from tasks.drift.check import check_drift, columns_from_snapshot, evidently_report
from tasks.settings import DEFAULT_CONTRACT

DRIFTED = DriftSpec(size_shift=0.3, age_shift_years=10)
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


def _memory() -> dict[str, float]:
    with open("/proc/self/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return {key: int(value.split()[0]) / 1024 for key, value in fields.items()}


def measure(action: Callable[[], str]) -> Run:
    """Run once: wall and CPU seconds, peak MiB of resident memory above the start, the status."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap back, or reuse hides the peak
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    before = _memory()["VmRSS"]
    start, cpu = time.perf_counter(), time.process_time()
    status = action()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Run(seconds, cpu, _memory()["VmHWM"] - before, status)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,5000000")
    parser.add_argument("--evidently-max", type=int, default=1_000_000)
    parser.add_argument("--agreement-rows", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    contract, policy = load_contract(DEFAULT_CONTRACT), DriftPolicy()
    start = time.perf_counter()
    import evidently  # noqa: F401  (timed apart: a flow pays it once per process)

    print(f"import evidently: {time.perf_counter() - start:.1f} s; "
          f"warm-up: {warm_up(contract, policy):.1f} s")  # fmt: skip
    print(f"policy: {policy.model_dump_json()}")
    sizes = {}
    for rows in (int(size) for size in args.sizes.split(",")):
        sizes[rows] = bench_size(rows, contract, policy, args.evidently_max)
    agreement = bench_agreement(args.agreement_rows, contract, policy)
    print(f"\nwhole benchmark: {time.perf_counter() - start:.0f} s")
    if args.json:
        runs = {rows: {k: v and asdict(v) for k, v in r.items()} for rows, r in sizes.items()}
        args.json.write_text(json.dumps({"sizes": runs, "agreement": agreement}, indent=2))


if __name__ == "__main__":
    main()
