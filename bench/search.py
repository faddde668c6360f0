"""Benchmark the optional hyper-parameter search (tasks/training/search.py): the holdout metric of
the default policy's model against the searched one's, seed by seed, on small real data sets.

Run from the project root: `python -m bench.search [--budget 30] [--seeds 3] [--threads 1]
[--json PATH]`.

Data: scikit-learn's bundled diabetes (442 rows, regression), breast cancer (569 rows, 2 classes)
and wine (178 rows, 3 classes), class targets as text labels, each under the contract
`infer_config` writes (as `mlops init` does). For each seed 1..N: the project's seeded 80/20 split
(`split_holdout`), then `train_model` — the retrain's own entry point — with the policy the
settings build (`get_settings(seed=...).training.params()`): once as it is (search off), once with
`training.search` on (`enabled`, `budget_s`; the policy's other search values). Figures: holdout
MAE (regression) or log loss (classes), lower is better; the search's own wall seconds and what
it records (fold fits skipped past the deadline, cut short, the round chosen or why none was).
Summary per set: the means, and on how many seeds the search lowered the holdout metric.
Threads: capped at --threads (threadpoolctl; default 1, a shared machine); the search itself
always runs at one OpenMP thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import mean

if __package__ in (None, ""):  # run as a file: make `tasks` and `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.metrics import log_loss, mean_absolute_error
from threadpoolctl import threadpool_limits

from bench.calibration import labelled

HOLDOUT = 0.2


def data_sets() -> dict[str, pd.DataFrame]:
    """A regression, a binary and a multiclass set, each a few hundred rows."""
    cancer, wine = load_breast_cancer(), load_wine()
    return {
        "diabetes": load_diabetes(as_frame=True).frame,  # age, sex, bmi, ...; "target"
        "breast cancer": labelled(cancer.data, cancer.target, list(cancer.target_names)),
        "wine": labelled(wine.data, wine.target, list(wine.target_names)),
    }


def holdout_metric(model: object, holdout: pd.DataFrame, contract: object) -> float:
    """MAE for a regressor, log loss for a classifier: lower is better for both."""
    features, truth = holdout[contract.feature_names], holdout[contract.target.name].to_numpy()
    if contract.task == "classification":
        return float(log_loss(truth, model.predict_proba(features), labels=model.classes_))
    return float(mean_absolute_error(truth.astype(float), model.predict(features)))


def measure(name: str, frame: pd.DataFrame, seed: int, budget_s: float) -> dict[str, object]:
    """One set, one seed: the default model and the searched one on the same split."""
    from tasks.data.inference import infer_config
    from tasks.data.loading import split_holdout
    from tasks.settings import get_settings
    from tasks.training.model import train_model

    contract = infer_config(frame, "target", "bench-search")[0].contract
    train, holdout = split_holdout(frame, HOLDOUT, seed=seed)
    plain = get_settings(seed=seed).training
    searching = get_settings(
        seed=seed, training={"search": {"enabled": True, "budget_s": budget_s}}
    ).training
    default = train_model(train, contract, seed, plain.params())
    searched = train_model(train, contract, seed, searching.params())
    summary = searched.params["search"]
    return {
        "set": name, "seed": seed, "task": contract.task, "train_rows": len(train),
        "metric": "log loss" if contract.task == "classification" else "MAE",
        "default": holdout_metric(default.model, holdout, contract),
        "searched": holdout_metric(searched.model, holdout, contract),
        "default_s": default.seconds, "searched_s": searched.seconds,
        "chosen": {key: searched.params[key] for key in plain.search.space()},
        "search": summary,
    }  # fmt: skip


def outcome(run: dict) -> str:
    """What the search recorded: fits skipped past the deadline, cut short, round or fallback."""
    search = run["search"]
    cut = "cut short" if search["cut_short"] else "finished"
    chosen = (
        f"round {search['chosen_round']}/{search['rounds']}"
        if search["chosen_round"]
        else (f"fallback: {search['fallback']}")
    )
    return f"{search['skipped_fits']:>4} {cut:<10} {chosen}"


def print_table(runs: list[dict]) -> None:
    print(f"{'set':<15}{'seed':>5}  {'metric':<9}{'default':>9}{'search':>9}{'diff':>9}"
          f"{'search s':>10}  skipped, ended, choice")  # fmt: skip
    for run in runs:
        diff = run["searched"] - run["default"]
        print(f"{run['set']:<15}{run['seed']:>5}  {run['metric']:<9}{run['default']:>9.4f}"
              f"{run['searched']:>9.4f}{diff:>+9.4f}{run['search']['elapsed_s']:>10.1f}"
              f"  {outcome(run)}")  # fmt: skip


def print_summary(runs: list[dict]) -> None:
    print(f"\n{'set':<15}{'seeds':>6}  {'metric':<9}{'default':>9}{'search':>9}{'diff':>9}"
          f"{'search s':>10}  improved  cut short")  # fmt: skip
    for name in dict.fromkeys(run["set"] for run in runs):
        mine = [run for run in runs if run["set"] == name]
        default, searched = mean(r["default"] for r in mine), mean(r["searched"] for r in mine)
        improved = sum(r["searched"] < r["default"] for r in mine)
        cut = sum(r["search"]["cut_short"] for r in mine)
        print(f"{name:<15}{len(mine):>6}  {mine[0]['metric']:<9}{default:>9.4f}{searched:>9.4f}"
              f"{searched - default:>+9.4f}{mean(r['search']['elapsed_s'] for r in mine):>10.1f}"
              f"  {improved:>3} of {len(mine):<3}{cut:>4} of {len(mine)}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=30.0, help="search budget_s per training")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N (split and training)")
    parser.add_argument("--threads", type=int, default=1, help="cap OpenMP/BLAS threads")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    load_before, started = os.getloadavg(), time.perf_counter()
    runs = []
    with threadpool_limits(args.threads):
        for name, frame in data_sets().items():
            for seed in range(1, args.seeds + 1):
                runs.append(measure(name, frame, seed, args.budget))
                print(f"  {name}, seed {seed} measured", file=sys.stderr, flush=True)
    print(f"search benchmark: budget {args.budget:g} s, seeds 1..{args.seeds}, 80/20 split;"
          f" {os.cpu_count()} cores, threads capped at {args.threads}\n")  # fmt: skip
    print_table(runs)
    print_summary(runs)
    load = os.getloadavg()
    print(f"\nholdout MAE / log loss, lower is better; diff = search - default (negative: the search"
          f" helped); search s = the search alone (the final fit comes after it)\n"
          f"total wall time {time.perf_counter() - started:.0f}s; load average (1, 5, 15 min)"
          f" before {', '.join(f'{v:.2f}' for v in load_before)}; after"
          f" {', '.join(f'{v:.2f}' for v in load)}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "load": load}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
