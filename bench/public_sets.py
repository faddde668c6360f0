"""Regression and classification side by side: what the default path reaches on public data and
what the gate says, with the reason it gives.

Run from the project root: `python -m bench.public_sets [--seeds 1] [--threads 1] [--json PATH]`.

Each data set goes the way `mlops init` + `mlops check` take it: the contract `infer_config`
writes for it (the house-price example uses its shipped contract), the project's seeded 80/20
split (`split_holdout`, seeds 42, 43, …), `train_model` with the policy's defaults unless a row
says otherwise, `evaluate_model` with the naive baseline (training median / class prior) on the
same holdout, and `judge_candidate` with the default `GatePolicy` and no champion. Figures per
data set: rows, task, holdout metrics, the baseline's, the gate's verdict and the reason of its
baseline check (with several seeds: means, and how many seeds passed).

Data: scikit-learn's bundled diabetes (442 rows, regression), breast cancer (569, binary; labels
as text) and wine (178, three classes; labels 0/1/2 as integers, as a CSV holds them); the
project's synthetic house prices (5,000 rows); a synthetic target that crosses zero
(y = 3·x1 − 2·x2 + N(0, 1), 2,000 rows); and two that must be refused: that set with shuffled
labels, and breast cancer with shuffled labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tasks` and `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from tasks.data.contract import DataContract, load_contract
from tasks.data.inference import infer_config
from tasks.data.loading import split_holdout
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.gate import GatePolicy, GateVerdict, judge_candidate
from tasks.settings import DEFAULT_CONTRACT
from tasks.training.evaluation import baseline_metrics, evaluate_model
from tasks.training.model import train_model

# The diabetes model the main job registers declares a smaller, slower booster for 442 rows.
SMALL_DATA = {"max_iter": 150, "learning_rate": 0.03, "max_leaf_nodes": 4}
SHOWN = {"regression": ("r2", "mae"), "classification": ("accuracy", "roc_auc", "log_loss")}


def crossing_zero(rows: int = 2_000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": 3 * x1 - 2 * x2 + rng.normal(0, 1, rows)})


def shuffled(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    return frame.assign(**{target: np.random.default_rng(0).permutation(frame[target].values)})


def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.frame.assign(target=data.frame["target"].map(dict(enumerate(data.target_names))))


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    return load_wine(as_frame=True).frame


# name → (the data, its target, its contract or None to infer it, training parameters)
Case = tuple[Callable[[], pd.DataFrame], str, DataContract | None, dict]
CASES: dict[str, Case] = {
    "house prices (synthetic)": (lambda: generate_house_prices(5_000, seed=1), "price",
                                 load_contract(DEFAULT_CONTRACT), {}),
    "house prices, target_transform log": (lambda: generate_house_prices(5_000, seed=1), "price",
                                           load_contract(DEFAULT_CONTRACT),
                                           {"target_transform": "log"}),
    "diabetes (sklearn)": (diabetes, "target", None, {}),
    "diabetes, small-data policy": (diabetes, "target", None, SMALL_DATA),
    "y crosses zero (synthetic)": (crossing_zero, "y", None, {}),
    "y crosses zero, shuffled labels": (lambda: shuffled(crossing_zero(), "y"), "y", None, {}),
    "breast cancer (sklearn)": (cancer, "target", None, {}),
    "breast cancer, shuffled labels": (lambda: shuffled(cancer(), "target"), "target", None, {}),
    "wine (sklearn, labels 0/1/2)": (wine, "target", None, {}),
}  # fmt: skip


def judged(case: Case, seed: int) -> dict[str, object]:
    load, target, contract, params = case
    frame = load()
    contract = contract or infer_config(frame, target, "bench")[0].contract
    train, holdout = split_holdout(frame, 0.2, seed=seed)
    trained = train_model(train, contract, seed, params)
    baseline = baseline_metrics(train, holdout, contract)
    evaluation = evaluate_model(trained.model, holdout, contract, seed, baseline)
    verdict: GateVerdict = judge_candidate(evaluation, None, GatePolicy())
    (vs_baseline,) = [c for c in verdict.checks if c.name.endswith("vs baseline")]
    shown = SHOWN[contract.task]
    return {
        "rows": len(frame),
        "task": contract.task + (f" ({len(contract.classes)} classes)" if contract.classes else ""),
        "metrics": {name: evaluation.metrics[name] for name in shown if name in evaluation.metrics},
        "baseline": {name: baseline[name] for name in shown if name in baseline},
        "passed": verdict.passed,
        "reason": vs_baseline.reason,
        "failed": [c.reason for c in verdict.checks if not c.passed],
        "seconds": trained.seconds,
    }


def summary(runs: list[dict[str, object]]) -> dict[str, object]:
    first = runs[0]
    mean = {
        name: float(np.mean([run["metrics"][name] for run in runs])) for name in first["metrics"]
    }
    base = {
        name: float(np.mean([run["baseline"][name] for run in runs])) for name in first["baseline"]
    }
    return {**first, "metrics": mean, "baseline": base,
            "passed_seeds": sum(bool(run["passed"]) for run in runs), "seeds": len(runs)}  # fmt: skip


def fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:,.3f}" if abs(value) < 1000 else f"{name} {value:,.0f}"
                     for name, value in values.items())  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="splits and training seeds 42, 43, …")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS threads")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    results = {}
    with threadpool_limits(args.threads):
        for name, case in CASES.items():
            results[name] = summary([judged(case, 42 + i) for i in range(args.seeds)])
    seeds = "seed 42" if args.seeds == 1 else f"seeds 42–{41 + args.seeds}, means"
    print(f"default path and gate on public and synthetic data ({seeds}; 80/20 split)\n")
    print("| data set | task | rows | holdout | naive baseline | gate | why |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        gate = "passed" if r["passed"] else "refused"
        if r["seeds"] > 1:
            gate = f"passed {r['passed_seeds']} of {r['seeds']}"
        why = r["reason"] if r["passed"] else "; ".join(r["failed"])
        why = f"seed 42: {why}" if r["seeds"] > 1 else why
        print(f"| {name} | {r['task']} | {r['rows']:,} | {fmt(r['metrics'])} |"
              f" {fmt(r['baseline'])} | {gate} | {why} |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
