"""Benchmark: the canary verdict's error rates and speed, on simulated traffic, against the old
verdict and a Flagger-style analysis.

Run from the project root: `python -m bench.canary_stats [--canaries 1000] [--quick] [--seed 0]
[--window 3600] [--label-delay 60] [--workers 2] [--json build/canary_stats.json]`.

Data model. Each simulated second, Poisson(rps) requests, each to the canary with probability
0.10 (so stable gets Poisson(0.9·rps), the canary Poisson(0.1·rps), independently). True price
y ~ lognormal(mean log 12.0, sd 0.4); stable predicts ŷ = y·exp(N(0, 0.10)). A canary with
"+x% labelled loss" predicts y + (ŷ' − y)(1 + x), ŷ' drawn like stable's, so its mean absolute
error is (1 + x)× stable's; "prediction shift s" multiplies its predictions by (1 + s). A request
fails with probability 0.1% (the canary 2% in the error scenario); a failed request has no
prediction and no latency. Latency is lognormal (median 20 ms, σ 0.5) in both arms. A fraction
f ∈ {0, 0.5, 1} of answered rows gets its label, arriving `--label-delay` (60) s after the
request. Every rule sees each arm's cumulative evidence from the canary's start.

Rules, side by side on the same traffic, one look per simulated second (canary_poll_s = 1 s):
1. NEW: tasks.decisions.canary.decide_canary on counts, a latency histogram and the moments of
   predictions and of the absolute error of labelled rows; require_labels=True when f > 0,
   False when f = 0; max_window_s = `--window`; other settings as shipped (max_requests 100,000).
   Looks where it must wait are screened by bench/canary_sim/screen.py, a numpy transcription
   of its rules: the real function is called at every look the screen says decides and at a
   random `--audit` share (1%) of the others, and every disagreement is counted and printed (the
   decisions are the real function's; `--every-look` calls it at every look).
2. BEFORE: bench/baselines/canary_before.py (the shipped verdict before this change, policy as
   shipped: significance 0.05, min_requests 50, require_labels False, max_requests 5,000) with
   p50/p95 of the raw latencies (numpy's linear percentile), a reservoir sample (Algorithm R) of
   at most 1,000 predictions per version and the |y − ŷ|/|y| of the labelled rows (the most
   recent 5,000 per version). It is called at every look except those where it cannot act (no
   canary error yet, under 50 canary requests, under 30 predictions and 30 labels per version).
3. FLAGGER-style: every 60 s, over that interval only: canary request success rate ≥ 99%, p95
   latency ≤ 500 ms (from the interval's latency histogram), and when labels exist the canary's
   mean absolute error ≤ 1.10× stable's over the labels that arrived in the interval; under 10
   canary requests, or no labels for an arm, is "no values" and fails. A failed interval adds a
   failure; rollback at 5 failures, promotion at 10 passing intervals (Flagger's A/B settings
   interval 1m, threshold 5, iterations 10; real Flagger acts on the tick after).
A canary is simulated until all three rules decided or the window ended. Undecided at the window's
end means rolled back by the window for NEW and BEFORE (reported apart from rollbacks on evidence).
Medians are over canaries decided on evidence. Canaries run in batches over `--workers`
processes; figures go to build/canary_stats.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` and `tasks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.canary_sim import report
from bench.canary_sim.model import STABLE_ERROR_RATE, Scenario
from bench.canary_sim.run import Batch, simulate

SCENARIOS = {
    s.key: s
    for s in (
        Scenario("identical", "identical", "identical versions"),
        *(
            Scenario(f"loss+{x}%", "loss", f"labelled loss +{x}%", loss_increase=x / 100)
            for x in (5, 10, 20, 40)
        ),
        Scenario("errors", "errors", "error rate 0.1% → 2%", canary_error_rate=0.02),
        *(
            Scenario(f"shift{x}%", "shift", f"prediction shift {x}%", shift=x / 100)
            for x in (5, 15)
        ),
    )
}
TRAFFIC = (5.0, 50.0, 500.0)
ROOT = Path(__file__).resolve().parents[1]
SOURCES = (
    "tasks/decisions/canary.py",
    "tasks/decisions/canary_checks.py",
    "tasks/decisions/sequential.py",
    "bench/baselines/canary_before.py",
)


def sources() -> dict[str, str]:
    """The verdicts' source files measured (their sha256, first 12 hex digits)."""
    return {p: hashlib.sha256((ROOT / p).read_bytes()).hexdigest()[:12] for p in SOURCES}


def all_runs() -> list[tuple[str, float, float]]:
    """identical × all labels; loss × labels half and all; errors and shift × no labels."""
    runs = []
    for key, s in SCENARIOS.items():
        labels = {"identical": (0.0, 0.5, 1.0), "loss": (0.5, 1.0)}.get(s.family, (0.0,))
        runs += [(key, rps, f) for rps in TRAFFIC for f in labels]
    return runs


def quick_runs() -> list[tuple[str, float, float]]:
    keep = {("identical", r, f) for r in TRAFFIC for f in (0.0, 1.0)}
    keep |= {(k, r, 1.0) for k in ("loss+20%", "loss+40%") for r in (50.0, 500.0)}
    keep |= {("errors", 50.0, 0.0), ("shift15%", 50.0, 0.0)}
    return [run for run in all_runs() if run in keep]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=1000, help="simulated canaries per run")
    parser.add_argument("--quick", action="store_true", help="100 canaries, fewer scenarios")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=3600, help="max_window_s of the verdicts")
    parser.add_argument("--label-delay", type=int, default=60, help="seconds until a label")
    parser.add_argument("--traffic", default=None, help="comma-separated req/s, e.g. 5,50")
    parser.add_argument(
        "--audit",
        type=float,
        default=0.01,
        help="share of screened-out looks sent to the real verdict too",
    )
    parser.add_argument("--every-look", action="store_true", help="real verdict at every look")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=250, help="canaries per work unit")
    parser.add_argument("--json", type=Path, default=Path("build/canary_stats.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.canaries, args.batch = 100, 50
    return args


def batches(args: argparse.Namespace) -> tuple[list[tuple], list[Batch]]:
    index = {run: i for i, run in enumerate(all_runs())}  # a run's random stream: its place here
    runs = quick_runs() if args.quick else all_runs()
    if args.traffic:
        keep = {float(x) for x in args.traffic.split(",")}
        runs = [run for run in runs if run[1] in keep]
    units = []
    for run in runs:
        key, rps, f = run
        for b, start in enumerate(range(0, args.canaries, args.batch)):
            units.append(
                Batch(
                    SCENARIOS[key],
                    rps,
                    f,
                    min(args.batch, args.canaries - start),
                    args.seed,
                    (index[run], b),
                    args.window,
                    args.label_delay,
                    1.0 if args.every_look else args.audit,
                )
            )
    units.sort(key=lambda u: (u.rps, -u.label_fraction))  # the long ones first
    return runs, units


def collect(runs: list[tuple], results: list[dict]) -> list[dict]:
    out = []
    for i, (key, rps, f) in enumerate(runs):
        parts = [
            r for r in results if (r["scenario"], r["rps"], r["label_fraction"]) == (key, rps, f)
        ]
        rules = {
            rule: report.figures(
                {
                    k: np.concatenate([p["rules"][rule][k] for p in parts])
                    for k in parts[0]["rules"][rule]
                },
                report.CHECKS[rule],
            )
            for rule in report.RULES
        }
        checks = {
            k: sum((p["checks"][k] for p in parts), [] if k == "new_examples" else 0)
            for k in parts[0]["checks"]
        }
        s = SCENARIOS[key]
        out.append(
            {
                "id": i,
                "scenario": key,
                "family": s.family,
                "title": s.title,
                "rps": rps,
                "label_fraction": f,
                "require_labels": f > 0,
                "rules": rules,
                "checks": checks,
                "cpu_seconds": sum(p["seconds"]["total"] for p in parts),
                "seconds_by_part": {
                    k: sum(p["seconds"][k] for p in parts) for k in parts[0]["seconds"]
                },
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    runs, units = batches(args)
    print("verdict sources: " + ", ".join(f"{p} {h}" for p, h in sources().items()))
    print(
        f"{len(runs)} runs × {args.canaries} canaries ({len(units)} batches, {args.workers} "
        f"workers); window {args.window} s, labels {args.label_delay} s late, seed {args.seed}"
    )
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        results = []
        for n, result in enumerate(pool.imap_unordered(simulate, units), 1):
            results.append(result)
            if n % max(1, len(units) // 10) == 0:
                print(
                    f"  {n}/{len(units)} batches, {time.perf_counter() - start:.0f} s", flush=True
                )
    figures = collect(runs, results)
    for family in report.FAMILIES:
        chosen = [run for run in figures if run["family"] == family]
        if chosen:
            print("\n" + report.table(family, chosen))
    fixed = report.fixed_horizon(0.40, 2_000_000, args.seed + 12345)
    lines = report.targets(figures, fixed)
    print(
        f"\nFixed-horizon test for labelled loss +40% (α = β = 0.05, π = 0.10, from 2M rows): "
        f"Δ = {fixed['effect']:,.0f}, σ_ψ = {fixed['sd_psi']:,.0f}, "
        f"n_fixed = {fixed['n_fixed']:,.0f} labelled rows (both arms)"
    )
    print("\nTargets for the NEW verdict:")
    for line in lines:
        print(f"  {'PASS' if line['pass'] else 'FAIL'}  {line['text']}")
    checks = {
        k: sum(run["checks"][k] for run in figures)
        for k in figures[0]["checks"]
        if k != "new_examples"
    }
    print(
        f"\nScreen check: the real NEW verdict ran at {checks['new_calls']:,} of "
        f"{checks['new_looks']:,} looks ({checks['new_audited']:,} audited while the screen "
        f"said wait); disagreements: {checks['new_mismatches']}. BEFORE ran at "
        f"{checks['before_calls']:,} looks ({checks['before_audited']:,} audited); "
        f"disagreements: {checks['before_mismatches']}."
    )
    for run in figures:
        for example in run["checks"]["new_examples"]:
            print(f"  disagreement in {run['title']}, {run['rps']:g} req/s: {example}")
    wall = time.perf_counter() - start
    cpu = sum(run["cpu_seconds"] for run in figures)
    print(f"\nRun time: {wall:.0f} s wall, {cpu:.0f} s CPU in the workers")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "sources": sources(),
                "stable_error_rate": STABLE_ERROR_RATE,
                "runs": figures,
                "fixed_horizon": fixed,
                "targets": lines,
                "screen": checks,
                "wall_seconds": wall,
                "cpu_seconds": cpu,
            },
            indent=2,
        )
    )
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
