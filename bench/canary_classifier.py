"""Benchmark: the canary verdict's error rates for CLASSIFIERS, on simulated traffic.

Run from the project root: `python -m bench.canary_classifier [--canaries 200] [--quick]
[--seed 0] [--window 3600] [--rps 50] [--label-delay 60] [--workers 2]
[--json build/canary_classifier.json]`.

Data model (bench/canary_classifier_sim/world.py). Binary: true logit η = logit(0.3) + 1.5·z,
z ~ N(0, 1), P(class 1) = σ(η). Three classes: logits log(0.5, 0.3, 0.2) + z, z ~ N(0, I₃),
p = softmax. Each row's label is drawn from p. Stable predicts softmax(η + 0.5·ε), ε ~ N(0, 1)
(on the second logit for binary, on every logit for three classes): noisy, calibrated-ish. The
canary predicts softmax((η + 0.5·ε' + c·e_j) / T), ε' drawn like stable's:
- identical: T = 1, c = 0 (same predictive distribution): any rollback is a FALSE ROLLBACK;
- log loss +x% (x = 10, 25, 50): over-confident, T < 1 solved by bisection on 200,000 rows so
  its mean log loss is (1 + x)× stable's; the true increase and the mean shift it brings are
  measured on an independent 1,000,000-row sample (`--sample-rows`; --quick: 200,000) and printed: a promotion is a FALSE PROMOTION;
- P(class j) +δ (δ = 0.05, 0.10; j = 1 of 2, j = 2 of 3): c solved so class j's mean predicted
  probability rises by δ (the others fall through the softmax), run without labels.
Traffic as bench/canary_stats.py: each second Poisson(0.9·rps) stable and Poisson(0.1·rps)
canary requests of one row (rps 50), each failing with probability 0.1% (no prediction, no
latency), latency lognormal (median 20 ms, σ 0.5) in both arms. A fraction f ∈ {0, 0.5, 1} of
answered rows gets its label `--label-delay` (60) s after the request.

Verdict: the real tasks.decisions.canary.decide_canary on real VersionEvidence (validated), one
per version, with the fields `version_evidence` (tasks/release/window.py) fills for a classifier:
request and error counts, the latency histogram, the moments of each watched probability (binary:
proba_1; three classes: every proba_i, also in class_probabilities), the moments of the log loss
of the labelled rows that have arrived, loss_name "log loss". It is called at EVERY look, one per
simulated second (canary_poll_s = 1 s), no screen. Two checks that the bench feeds it what the
product would: every batch recomputes its first 20,000 losses with Scoring.classifier's own
loss_of (mismatches printed), and at start one short run per class count is written as serving
logs (records_frame) and read back by version_evidence, which must give the same evidence.
Policy: CanaryPolicy() as shipped (α = β = 0.05, margins +10% loss and 0.25 SD, require_labels
False, max_window_s 3600, the class's own default; the flows run 600 s, RUN_DEFAULTS in
tasks/settings.py: `--window 600`). Labelled cells also run with require_labels=True, the only
setting under which the false-promotion promise covers the labelled loss.
A canary undecided when the window ends is rolled back by the window (reported apart). Medians
are over canaries decided on evidence. Intervals are Wilson 95%. Figures go to --json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` and `tasks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.canary_classifier_sim import audit, report, world
from bench.canary_classifier_sim.run import Batch, simulate
from tasks.decisions.canary import CanaryPolicy

# key -> (family, title, loss increase, mean shift of the shifted class)
SCENARIOS = {
    "identical": ("identical", "identical", 0.0, 0.0),
    **{f"loss+{x}%": ("loss", f"log loss +{x}%", x / 100, 0.0) for x in (10, 25, 50)},
    **{f"shift+{d}": ("shift", f"P(last class) +{d}", 0.0, d) for d in (0.05, 0.10)},
}


def all_cells() -> list[dict]:
    """Each class count × scenario × label fraction (shift: no labels) × policy."""
    cells = []
    for k in (2, 3):
        for key, (family, *_rest) in SCENARIOS.items():
            for f in (0.0,) if family == "shift" else (0.0, 0.5, 1.0):
                for required in (False, True) if f > 0 else (False,):
                    cells.append({"k": k, "scenario": key, "label_fraction": f,
                                  "require_labels": required})  # fmt: skip
    return cells


def quick_cells() -> list[dict]:
    keep = {("identical", 0.0, False), ("identical", 1.0, False), ("identical", 1.0, True),
            ("loss+50%", 1.0, True), ("loss+50%", 0.0, False), ("shift+0.1", 0.0, False)}  # fmt: skip
    return [c for c in all_cells()
            if (c["scenario"], c["label_fraction"], c["require_labels"]) in keep]  # fmt: skip


def solved(seed: int, rows: int) -> dict[tuple[int, str], tuple[world.Predictor, dict]]:
    """Each scenario's canary predictor, solved on rows/5 rows and measured on `rows` others."""
    out = {}
    for k in (2, 3):
        fit, check = world.Sample.draw(k, rows // 5, seed + 1), world.Sample.draw(k, rows, seed + 2)
        for key, (_, _, loss, shift) in SCENARIOS.items():
            arm = world.solve(fit, loss, shift)
            out[k, key] = arm, world.measure(check, arm)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=200, help="simulated canaries per cell")
    parser.add_argument("--quick", action="store_true", help="40 canaries, 12 cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=3600, help="max_window_s (s)")
    parser.add_argument("--rps", type=float, default=50.0, help="requests per second, both arms")
    parser.add_argument("--label-delay", type=int, default=60, help="seconds until a label")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=50, help="canaries per work unit")
    parser.add_argument("--cells", default=None, help="only cells whose scenario key is listed")
    parser.add_argument("--sample-rows", type=int, default=1_000_000, help="rows to measure on")
    parser.add_argument("--json", type=Path, default=Path("build/canary_classifier.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.canaries, args.batch = min(args.canaries, 40), 40
        args.sample_rows = min(args.sample_rows, 200_000)
    return args


def batches(args, cells: list[dict], arms: dict) -> list[Batch]:
    index = {tuple(c.values()): i for i, c in enumerate(all_cells())}  # a cell's random stream
    units = []
    for c in cells:
        for b, start in enumerate(range(0, args.canaries, args.batch)):
            units.append(Batch(c["k"], arms[c["k"], c["scenario"]][0], c["label_fraction"],
                               c["require_labels"], min(args.batch, args.canaries - start),
                               args.seed, (index[tuple(c.values())], b), args.window,
                               args.label_delay, args.rps))  # fmt: skip
    return units


def collect(cells: list[dict], units: list[Batch], results: list[dict], arms, policy) -> list[dict]:
    out = []
    for c in cells:
        i = next(i for i, cell in enumerate(all_cells()) if cell == c)
        parts = [r for r in results if r["key"][0] == i]
        outcome = {k: np.concatenate([p["outcome"][k] for p in parts]) for k in parts[0]["outcome"]}
        family, title, target, _ = SCENARIOS[c["scenario"]]
        cell = {**c, "family": family, "title": title, "target": target,
                "effect": arms[c["k"], c["scenario"]][1], "figures": report.figures(outcome),
                "checks": {k: sum(p["checks"][k] for p in parts) for k in parts[0]["checks"]},
                "cpu_seconds": sum(p["seconds"]["total"] for p in parts)}  # fmt: skip
        cell["promise"] = report.promise(cell, policy)
        out.append(cell)
    return out


def verdict_lines(cells: list[dict], policy: CanaryPolicy) -> list[str]:
    promised = [c for c in cells if c["promise"]["kind"] != "none"]
    lines = [f"The verdict promises (tasks/decisions/canary.py): false rollback ≤ α = "
             f"{policy.alpha:.0%} for a canary no worse on every check, however often it looks; "
             f"false promotion ≤ β = {policy.beta:.0%} for a canary worse by a margin on a "
             f"required check."]  # fmt: skip
    for c in promised:
        p = c["promise"]
        mark = "HOLDS" if p["holds"] else "BROKEN" if p["broken"] else "ABOVE (within noise)"
        lines.append(f"  {mark:>20}  {c['k']} classes, {c['title']}, labels "
                     f"{c['label_fraction']:.0%}, {'labels required' if c['require_labels'] else 'shipped'}: "
                     f"{p['text']}")  # fmt: skip
    ok = all(c["promise"]["holds"] for c in promised)
    broken = [c for c in promised if c["promise"]["broken"]]
    lines.append("Promise: " + ("HOLDS in every cell it covers." if ok else
                 f"BROKEN in {len(broken)} cell(s)." if broken else
                 "above the bound in some cell(s), within sampling noise."))  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start, policy = time.perf_counter(), CanaryPolicy(max_window_s=args.window)
    cells = quick_cells() if args.quick else all_cells()
    if args.cells:
        cells = [c for c in cells if c["scenario"] in args.cells.split(",")]
    arms = solved(args.seed, args.sample_rows)
    problems = [p for k in (2, 3) for p in audit.compare(k, arms[k, "loss+25%"][0])]
    print(f"evidence audit (bench vs version_evidence on the same rows): "
          f"{problems or 'identical'}")  # fmt: skip
    units = batches(args, cells, arms)
    print(f"{len(cells)} cells × {args.canaries} canaries ({len(units)} batches, {args.workers} "
          f"workers); {args.rps:g} req/s, window {args.window} s, labels {args.label_delay} s "
          f"late, one real verdict per canary per simulated second; seed {args.seed}")  # fmt: skip
    units.sort(key=lambda u: (-u.label_fraction, -u.require_labels))  # the long ones first
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        results = []
        for n, result in enumerate(pool.imap_unordered(simulate, units), 1):
            results.append(result)
            if n % max(1, len(units) // 10) == 0:
                print(
                    f"  {n}/{len(units)} batches, {time.perf_counter() - start:.0f} s", flush=True
                )
    figures = collect(cells, units, results, arms, policy)
    print("\n" + report.table(figures) + "\n")
    lines = verdict_lines(figures, policy)
    print("\n".join(lines))
    checks = {k: sum(c["checks"][k] for c in figures) for k in figures[0]["checks"]}
    print(f"\nReal verdict calls: {checks['verdict_calls']:,}; log losses re-checked against "
          f"Scoring.classifier: {checks['loss_rows_audited']:,}, mismatches "
          f"{checks['loss_mismatches']}")  # fmt: skip
    wall, cpu = time.perf_counter() - start, sum(c["cpu_seconds"] for c in figures)
    print(f"Run time: {wall:.0f} s wall, {cpu:.0f} s CPU in the workers")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.json.write_text(json.dumps(
        {"config": config, "policy": policy.model_dump(), "evidence_audit": problems,
         "cells": figures, "promise": lines, "checks": checks, "wall_seconds": wall,
         "cpu_seconds": cpu}, indent=2))  # fmt: skip
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
