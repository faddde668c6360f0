"""Benchmark the classifier's calibration rule: raw vs always calibrated vs calibrated where the
out-of-fold log loss says it helps (tasks/training/classifier.py).

Run from the project root: `python -m bench.calibration [--seed 42] [--threads N] [--json PATH]`.

Data: scikit-learn's breast cancer (569 rows, 2 classes) and wine (178 rows, 3 classes), and a
noisy synthetic set (`make_classification`: 3,500 rows, 20 columns, 8 informative, 15% of labels
flipped), targets as text labels under the contract `infer_config` writes (as `mlops init` does);
the project's seeded 80/20 split (`split_holdout`). Models, from the same preprocessing, default
parameters and seed: raw — the booster alone; always — the calibration candidate (isotonic from
1,000 training rows, sigmoid below) as `CalibratedClassifierCV` over 5 folds, the old default;
rule — `fit_classifier`, which fits that candidate and keeps it only if its out-of-fold log loss
is lower. Figures: holdout log loss and accuracy; training wall and CPU seconds (all threads);
for the rule its choice and out-of-fold log loss raw vs calibrated. Threads: no cap unless
--threads (threadpoolctl; scikit-learn is loaded first, so the cap holds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tasks` and `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_wine, make_classification
from sklearn.metrics import accuracy_score, log_loss
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from bench.memory import measured_step

MODELS = ("raw", "always", "rule")


def labelled(features: np.ndarray, target: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Numeric columns and the target as text labels (so the contract makes it a class)."""
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(features.shape[1])])
    frame["target"] = np.asarray(names)[target]
    return frame


def data_sets(seed: int) -> dict[str, pd.DataFrame]:
    """Two small easy sets and a noisy one where calibration should help."""
    cancer, wine = load_breast_cancer(), load_wine()
    noisy = make_classification(n_samples=3_500, n_features=20, n_informative=8, flip_y=0.15,
                                random_state=seed)  # fmt: skip
    return {
        "breast cancer": labelled(cancer.data, cancer.target, list(cancer.target_names)),
        "wine": labelled(wine.data, wine.target, list(wine.target_names)),
        "synthetic 3,500, flip_y 0.15": labelled(*noisy, ["no", "yes"]),
    }


def fitters(contract: object, labels: np.ndarray, seed: int) -> dict[str, object]:
    """Each model's training, as a function of the training features: (model, rule's choice)."""
    from tasks.training.classifier import build_classifier, fit_classifier
    from tasks.training.model import DEFAULT_PARAMS, preprocessing

    def candidate() -> Pipeline:
        return build_classifier(preprocessing(contract)[0], labels, seed, DEFAULT_PARAMS)[0]

    def raw(features: pd.DataFrame) -> tuple[Pipeline, None]:
        steps = candidate().steps
        booster = getattr(steps[-1][1], "estimator", steps[-1][1])
        return Pipeline([steps[0], ("classifier", clone(booster))]).fit(features, labels), None

    def rule(features: pd.DataFrame) -> tuple[Pipeline, object]:
        return fit_classifier(preprocessing(contract)[0], features, labels, seed, DEFAULT_PARAMS)

    return {"raw": raw, "always": lambda features: (candidate().fit(features, labels), None),
            "rule": rule}  # fmt: skip


def measure(name: str, frame: pd.DataFrame, seed: int) -> dict[str, object]:
    """The three models on one set: holdout figures and training time of each."""
    from tasks.data.inference import infer_config
    from tasks.data.loading import split_holdout

    contract = infer_config(frame, "target", "bench-calibration")[0].contract
    train, holdout = split_holdout(frame, 0.2, seed=seed)
    features, truth = contract.feature_names, holdout["target"].to_numpy()
    result: dict[str, object] = {"set": name, "train_rows": len(train), "holdout_rows": len(holdout),
                                 "classes": len(contract.classes or ())}  # fmt: skip
    for label, fit in fitters(contract, train["target"].to_numpy(), seed).items():
        (model, choice), step = measured_step(lambda fit=fit: fit(train[features]))
        proba = model.predict_proba(holdout[features])
        result[label] = {
            "log_loss": log_loss(truth, proba, labels=model.classes_),
            "accuracy": accuracy_score(truth, model.classes_[proba.argmax(axis=1)]),
            "seconds": step["seconds"], "cpu_seconds": step["cpu_seconds"],
        }  # fmt: skip
        if choice is not None:
            result[label] |= {"calibration": choice.method} | choice.evidence()
    return result


def print_table(results: list[dict]) -> None:
    print(
        f"{'set':<30}{'rows':>6}  {'holdout log loss':^26}  {'accuracy':^20}"
        f"  {'train wall s (cpu s)':^38}  rule's choice: out-of-fold log loss raw -> calibrated"
    )
    print(f"{'':<36}" + "".join(f"{m:>9}" for m in MODELS) + "  "
          + "".join(f"{m:>7}" for m in MODELS) + "  " + "".join(f"{m:>13}" for m in MODELS))  # fmt: skip
    for r in results:
        rule = r["rule"]
        loss = "".join(f"{r[m]['log_loss']:>9.4f}" for m in MODELS)
        accuracy = "".join(f"{r[m]['accuracy']:>7.3f}" for m in MODELS)
        seconds = "".join(f"{r[m]['seconds']:>6.1f} ({r[m]['cpu_seconds']:>4.1f})" for m in MODELS)
        oof = (f"{rule['calibration']} ({rule['candidate']}: {rule['raw_oof_log_loss']}"
               f" -> {rule['calibrated_oof_log_loss']})")  # fmt: skip
        print(f"{r['set']:<30}{r['train_rows']:>6}{loss}  {accuracy}  {seconds}  {oof}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42, help="data, split and training seed")
    parser.add_argument("--threads", type=int, help="cap OpenMP/BLAS threads (default: no cap)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    load_before, started = os.getloadavg(), time.perf_counter()
    results = []
    with threadpool_limits(args.threads):  # None: no cap, as the flows train
        for name, frame in data_sets(args.seed).items():
            results.append(measure(name, frame, args.seed))
            print(f"  {name} measured", file=sys.stderr, flush=True)
    print(f"calibration benchmark: seed {args.seed}, 80/20 split; {os.cpu_count()} cores, threads"
          f" {'capped at ' + str(args.threads) if args.threads else 'not capped'}\n")  # fmt: skip
    print_table(results)
    load = os.getloadavg()
    print(f"\nraw = booster alone; always = the calibration candidate, always kept (the old"
          f" default); rule = kept only if it lowers out-of-fold log loss (fit_classifier)\n"
          f"total wall time {time.perf_counter() - started:.0f}s; load average (1, 5, 15 min)"
          f" before {', '.join(f'{v:.2f}' for v in load_before)}; after"
          f" {', '.join(f'{v:.2f}' for v in load)}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"results": results, "load": load}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
