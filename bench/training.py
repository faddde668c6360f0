"""Benchmark the training path — validate, split, train, evaluate, gate — by data size and task.

Run from the project root: `python -m bench.training [--sizes 10000,100000,1000000]
[--repetitions 3] [--quick] [--threads N] [--seed 42] [--json PATH]` (`--quick`: 10,000 rows
once, a smoke run).

Timed: the functions the retrain flow's stages call (flows/retrain.py → tasks/training/stages.py
→ tasks/training/recipe.py), without Prefect, S3 or a champion: `recipe.validate` (the data
contract), `recipe.split` (conform + seeded holdout), `recipe.fit`, and `recipe.judge` (the gate,
no champion). `recipe.fit` is called whole; for the call its collaborators are wrapped with timers
— `train_model` (the candidate), `baseline_metrics` + `evaluate_model` ("evaluate": the naive
baseline, then metrics, slices and behavioural checks on the holdout), `data_digest` (the batch's
fingerprint for the manifest) — so the figures are of the flow's own code path, and anything
`fit` does besides them is reported as its remainder. Not timed: reading a CSV, the training-set
snapshot to S3, scoring a champion (a registry load plus one more `evaluate_model`), registering.

Data: regression — generate_house_prices(rows, seed) under the default contract (DEFAULT_CONTRACT);
classification — a yes/no target drawn from a logistic function of four numeric columns and one
category, under the contract `infer_config` writes for it (as `mlops init` does). Classification
rows appear only when this revision's `train_model` trains a classifier (probed on 2,000 rows).
Each (task, size) runs `--repetitions` times, each in a fresh subprocess; the run with the median
pipeline time is shown, the others' pipeline times beside it. Time: wall clock (perf_counter) and
CPU time of all threads (process_time; train's CPU/wall ratio shows the parallelism reached).
Memory: the child's peak resident set per step (bench/memory.py: VmHWM reset before each step); a
run's peak is the largest. Threads: no cap, as the flows train, unless --threads (threadpoolctl);
the OpenMP threads scikit-learn's boosting may use are read in the child.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

if __package__ in (None, ""):  # run as a file: make `tasks` and `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits

from bench.memory import measured_step

ROOT = Path(__file__).resolve().parents[1]
# recipe.fit's collaborators, timed apart: label -> the name recipe calls it by
FIT_PARTS = {"train": "train_model", "baseline": "baseline_metrics",
             "evaluate": "evaluate_model", "digest": "data_digest"}  # fmt: skip
PIPELINE_STEPS = ("validate", "split", "gate")  # with recipe.fit: what a retrain runs
PLANS = {"basic": -0.6, "plus": 0.0, "premium": 0.7, "family": 0.3}


def generate_yes_no(rows: int, seed: int) -> pd.DataFrame:
    """A binary target as text ("yes"/"no"): logistic in four numeric columns and one category,
    with one non-linear term a boosted model should find and a linear one would not."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(np.log(50_000), 0.5, rows), 2)
    age = rng.integers(18, 90, rows)
    tenure = np.round(rng.gamma(2.0, 3.0, rows), 3)
    usage = np.round(rng.normal(0.0, 1.0, rows), 4)
    plan = rng.choice(list(PLANS), rows, p=[0.4, 0.3, 0.2, 0.1])
    logit = (1.3 * np.log(income / 50_000) - 0.03 * (age - 50) + 0.15 * (tenure - 6)
             + 1.2 * np.sin(2 * usage) + pd.Series(plan).map(PLANS).to_numpy())  # fmt: skip
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"income": income, "age": age, "tenure_years": tenure,
                         "usage": usage, "plan": plan, "bought": label})  # fmt: skip


def task_data(task: str, rows: int, seed: int) -> tuple[pd.DataFrame, object]:
    """The data set and its contract for `task`."""
    if task == "regression":
        from tasks.data.contract import load_contract
        from tasks.data.synthetic import generate_house_prices
        from tasks.settings import DEFAULT_CONTRACT

        return generate_house_prices(rows, seed), load_contract(DEFAULT_CONTRACT)
    from tasks.data.inference import infer_config

    frame = generate_yes_no(rows, seed)
    config, _ = infer_config(frame, "bought", "bench-yes-no")
    return frame, config.contract


def classification_missing(seed: int) -> str | None:
    """None if this revision's train_model trains a classifier; else why not."""
    from tasks.training.model import train_model

    frame, contract = task_data("classification", 2_000, seed)
    try:
        trained = train_model(frame, contract, seed, {"max_iter": 5})
    except (ValueError, TypeError) as error:  # a regressor fed text labels
        return f"train_model refused a classification contract ({error})"
    return None if hasattr(trained.model, "predict_proba") else "train_model built no classifier"


@contextmanager
def timed_calls(module: ModuleType, names: dict[str, str]) -> Iterator[dict[str, dict]]:
    """While open, each named function of `module` is measured under its label when the module
    calls it; fails at once if the module no longer has one of them."""
    originals = {label: getattr(module, name) for label, name in names.items()}
    figures: dict[str, dict] = {}

    def timed(label: str, function: Callable) -> Callable:
        def call(*args, **kwargs):
            result, figures[label] = measured_step(lambda: function(*args, **kwargs))
            return result

        return call

    for label, name in names.items():
        setattr(module, name, timed(label, originals[label]))
    try:
        yield figures
    finally:
        for label, name in names.items():
            setattr(module, name, originals[label])


def boosting_iterations(model: object) -> list[int]:
    """Boosting iterations of each fitted booster (one, or one per calibration fold)."""
    model = getattr(model, "regressor_", model)  # a log-target TransformedTargetRegressor
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(last, "calibrated_classifiers_"):
        return [int(part.estimator.n_iter_) for part in last.calibrated_classifiers_]
    return [int(last.n_iter_)] if hasattr(last, "n_iter_") else []


def measure(task: str, rows: int, seed: int) -> dict[str, object]:
    """In this (fresh) process: the recipe's steps on `rows` generated rows, each measured."""
    from tasks.settings import get_settings
    from tasks.training import recipe

    settings = get_settings(seed=seed)
    (frame, contract), prepare = measured_step(lambda: task_data(task, rows, seed))
    steps = {"prepare": prepare}
    _, steps["validate"] = measured_step(lambda: recipe.validate(frame, contract))
    parts, steps["split"] = measured_step(lambda: recipe.split(frame, contract, settings))
    with timed_calls(recipe, FIT_PARTS) as fit_parts:
        started = time.perf_counter()
        candidate = recipe.fit(frame, parts, contract, settings)
        fit_seconds = time.perf_counter() - started
    steps |= fit_parts
    verdict, steps["gate"] = measured_step(lambda: recipe.judge(candidate, None, settings))
    openmp = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"]
    evaluation = candidate.evaluation
    return {
        "task": task, "rows": rows, "holdout_rows": evaluation.rows, "steps": steps,
        "fit_seconds": fit_seconds,
        "pipeline_s": fit_seconds + sum(steps[label]["seconds"] for label in PIPELINE_STEPS),
        "fit_remainder_s": fit_seconds - sum(steps[label]["seconds"] for label in FIT_PARTS),
        "metrics": evaluation.metrics, "baseline": evaluation.baseline,
        "slices": len(evaluation.slices), "behaviour_checks": len(evaluation.behaviour),
        "gate_passed": verdict.passed,
        "gate_failed": [check.name for check in verdict.checks if not check.passed],
        "iterations": boosting_iterations(candidate.trained.model),
        "openmp_threads": max(openmp, default=None),
        "peak_mib": max(step["peak_mib"] for step in steps.values()),
    }  # fmt: skip


def run_child(task: str, rows: int, args: argparse.Namespace) -> dict[str, object]:
    """`measure` in a fresh interpreter, so each size's peak RSS is its own."""
    command = [sys.executable, "-m", "bench.training", "--measure", task, "--sizes", str(rows),
               "--seed", str(args.seed)] + (["--threads", str(args.threads)] if args.threads else [])  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{task} on {rows:,} rows failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def measure_size(task: str, rows: int, args: argparse.Namespace) -> dict[str, object]:
    """`args.repetitions` fresh runs; the one with the median pipeline time, with the others'
    pipeline times beside it (a shared machine's noise shows there)."""
    runs = sorted((run_child(task, rows, args) for _ in range(args.repetitions)),
                  key=lambda run: run["pipeline_s"])  # fmt: skip
    return runs[len(runs) // 2] | {"pipeline_runs_s": [run["pipeline_s"] for run in runs]}


def revision() -> str:
    """The commit measured, and whether the training code had uncommitted changes."""

    def git(*words: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *words], capture_output=True, text=True,
                              check=False).stdout.strip()  # fmt: skip

    commit = git("rev-parse", "--short", "HEAD") or "unknown (no git)"
    dirty = git("status", "--porcelain", "--", "tasks", "flows")
    return commit + (" + uncommitted changes in tasks/ or flows/" if dirty else "")


def print_times(results: list[dict]) -> None:
    print(
        f"\n== {results[0]['task']}: wall seconds per step (the median of"
        f" {len(results[0]['pipeline_runs_s'])} runs by pipeline time); peak RSS of that run =="
    )
    print(f"{'rows':>10}{'data':>7}{'validate':>10}{'split':>7}{'train':>8}{'cpu/wall':>9}"
          f"{'evaluate':>10}{'digest':>8}{'gate ms':>8}{'pipeline':>10}{'(min-max)':>16}"
          f"{'peak RSS':>10}{'omp':>5}")  # fmt: skip
    for result in results:
        steps = result["steps"]
        seconds = {label: step["seconds"] for label, step in steps.items()}
        train = steps["train"]
        spread = f"({min(result['pipeline_runs_s']):.2f}-{max(result['pipeline_runs_s']):.2f})"
        print(f"{result['rows']:>10,}{seconds['prepare']:>7.2f}{seconds['validate']:>10.2f}"
              f"{seconds['split']:>7.2f}{train['seconds']:>8.2f}"
              f"{train['cpu_seconds'] / train['seconds']:>8.1f}x"
              f"{seconds['baseline'] + seconds['evaluate']:>10.2f}{seconds['digest']:>8.2f}"
              f"{seconds['gate'] * 1e3:>8.1f}{result['pipeline_s']:>10.2f}{spread:>16}"
              f"{result['peak_mib']:>6.0f} MiB"
              f"{result['openmp_threads'] or '-':>5}")  # fmt: skip
        if result["fit_remainder_s"] > max(0.5, 0.05 * result["fit_seconds"]):
            print(f"{'':>10}  recipe.fit spent {result['fit_remainder_s']:.2f}s outside the "
                  "timed parts: a step this benchmark does not name")  # fmt: skip


def number(value: float | None) -> str:
    """A metric for the table: thousands as whole numbers, the rest with four digits."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def print_quality(results: list[dict]) -> None:
    classifier = results[0]["task"] == "classification"
    names = ["accuracy", "log_loss", "roc_auc"] if classifier else ["r2", "mae"]
    key = "log_loss" if classifier else "mae"
    print(f"{'rows':>10}{'holdout':>9}" + "".join(f"{name:>10}" for name in names)
          + f"{'baseline ' + key:>18}{'slices':>8}{'checks':>8}{'iterations':>21}  gate")  # fmt: skip
    for result in results:
        metrics, iterations = result["metrics"], result["iterations"]
        shown = "".join(f"{number(metrics.get(name)):>10}" for name in names)
        baseline = number((result["baseline"] or {}).get(key))
        boosts = "/".join(map(str, iterations)) or "-"  # one per calibration fold, if any
        gate = "passed" if result["gate_passed"] else "failed: " + ", ".join(result["gate_failed"])
        print(f"{result['rows']:>10,}{result['holdout_rows']:>9,}{shown}{baseline:>18}"
              f"{result['slices']:>8}{result['behaviour_checks']:>8}{boosts:>21}  {gate}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated rows")
    parser.add_argument("--quick", action="store_true", help="10,000 rows once (a smoke run)")
    parser.add_argument("--repetitions", "-n", type=int, default=3,
                        help="fresh runs per size; the median one is shown")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42, help="data, split and training seed")
    parser.add_argument("--threads", type=int, help="cap OpenMP/BLAS threads (default: no cap)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--measure", choices=["regression", "classification"],
                        help=argparse.SUPPRESS)  # the child's role  # fmt: skip
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    args.sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    args.repetitions = 1 if args.quick else args.repetitions
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        # threadpoolctl caps only the libraries loaded when it is called: load scikit-learn's
        # OpenMP runtime (and numpy's BLAS) first. None: no cap, as the flows train.
        from tasks.training import recipe  # noqa: F401

        with threadpool_limits(args.threads):
            print(json.dumps(measure(args.measure, args.sizes[0], args.seed)))
        return 0
    started, load_before = time.perf_counter(), os.getloadavg()
    missing = classification_missing(args.seed)
    print(f"training path benchmark: revision {revision()}; {os.cpu_count()} cores, "
          f"threads {'capped at ' + str(args.threads) if args.threads else 'not capped'}")  # fmt: skip
    report: dict[str, object] = {"classification_missing": missing}
    for task in ["regression"] + ([] if missing else ["classification"]):
        results = []
        for rows in args.sizes:
            results.append(measure_size(task, rows, args))
            print(f"  {task} on {rows:,} rows measured", file=sys.stderr, flush=True)
        print_times(results)
        print_quality(results)
        report[task] = results
    if missing:
        print(f"\nclassification: not available in this revision — {missing}")
    load = os.getloadavg()
    print(f"\ndata = generating the rows (+ infer_config for classification), not in the pipeline;"
          f" pipeline = validate + split + recipe.fit (train, evaluate, digest) + gate;"
          f" slices = slice groups evaluated, checks = behavioural checks\n"
          f"total wall time {time.perf_counter() - started:.0f}s; load average (1, 5, 15 min)"
          f" before {', '.join(f'{v:.2f}' for v in load_before)}; after"
          f" {', '.join(f'{v:.2f}' for v in load)}")  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps(report | {"load_before": load_before, "load": load}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
