"""The time-boxed search for the boosting's parameters: scikit-learn's successive halving over
random candidates, on the pipeline `train_model` would build, ended by a wall-clock deadline.

HalvingRandomSearchCV has no deadline of its own. Each candidate's fit goes through `_Timed`,
which fits nothing once the deadline has passed, and `_Score` scores such a fit NaN: the rest of
the search then costs only its bookkeeping, and the choice is made here from `cv_results_` — the
best candidate of the last round in which any candidate finished every fold. (A fit that raised
would do the same within a round, but a round in which every fit raised makes scikit-learn abort
the whole search, the earlier rounds' results lost with it.)

Rows are the resource halved, from a first round sized so the last one uses every row
(`min_resources="exhaust"`). The search runs sequentially (`n_jobs=1`) with OpenMP at one thread:
its fits are small, and histogram boosting's threads cost more than they give on small data —
on a busy two-core machine, 8 s against 0.02 s for 300 iterations on 30 rows.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.experimental import enable_halving_search_cv  # noqa: F401 - enables the import below
from sklearn.metrics import log_loss, mean_absolute_error
from sklearn.model_selection import HalvingRandomSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from tasks.training.policy import SearchPolicy

LOG = logging.getLogger(__name__)
BOOSTING = (HistGradientBoostingRegressor, HistGradientBoostingClassifier)


@dataclass(frozen=True)
class SearchSummary:
    """What a search did, as the manifest records it beside the parameters it chose."""

    scoring: str  # neg_mean_absolute_error | neg_log_loss, higher is better
    candidates: int  # sampled for the first round
    rounds: int  # planned; every round runs, past the deadline without fitting
    rows_per_round: list[int]
    scored: int  # candidate evaluations that finished every fold
    skipped_fits: int  # fold fits not made because the deadline had passed
    chosen_round: int | None  # 1-based round the choice comes from; None: fallback
    best_score: float | None
    elapsed_s: float
    budget_s: float
    cut_short: bool
    fallback: str  # why the policy's own values were kept; "" when a candidate was chosen

    def record(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SearchOutcome:
    params: dict[str, float | int]  # the searched parameters' chosen values (or the policy's)
    summary: SearchSummary


class _LogUniform:
    """A log-uniform range for ParameterSampler; whole numbers when `integer`."""

    def __init__(self, low: float, high: float, integer: bool) -> None:
        self.low, self.high, self.integer = low, high, integer

    def rvs(self, random_state: np.random.RandomState | None = None) -> float | int:
        rng = random_state if random_state is not None else np.random.RandomState()
        value = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return round(value) if self.integer else value


class _Timed(BaseEstimator):
    """`estimator`, fitted only while the deadline (a `time.monotonic()` value) is ahead."""

    def __init__(self, estimator: BaseEstimator, deadline: float) -> None:
        self.estimator = estimator
        self.deadline = deadline

    def fit(self, features: pd.DataFrame, target: np.ndarray) -> _Timed:
        self.expired_ = time.monotonic() >= self.deadline
        if not self.expired_:
            self.estimator_ = clone(self.estimator).fit(features, target)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self.estimator_.predict(features)


class _TimedRegressor(RegressorMixin, _Timed):
    pass


class _TimedClassifier(ClassifierMixin, _Timed):
    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.estimator_.predict_proba(features)

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator_.classes_


class _Score:
    """Negative MAE, or negative log loss over every class of the training target (a round's
    subsample may miss one); NaN for a fit the deadline skipped, which it counts."""

    def __init__(self, classes: np.ndarray | None) -> None:
        self.classes = classes
        self.skipped = 0

    def __call__(self, model: _Timed, features: pd.DataFrame, target: np.ndarray) -> float:
        if model.expired_:
            self.skipped += 1
            return np.nan
        if self.classes is None:
            return -mean_absolute_error(target, model.predict(features))
        proba = np.zeros((len(features), len(self.classes)))
        proba[:, np.searchsorted(self.classes, model.classes_)] = model.predict_proba(features)
        return -log_loss(target, proba, labels=self.classes)


def boosting_key(model: BaseEstimator) -> str:
    """Where the gradient boosting sits in `model`'s parameters ("regressor__regressor", ...)."""
    found = [k for k, v in model.get_params(deep=True).items() if isinstance(v, BOOSTING)]
    if not found:
        raise TypeError(f"{type(model).__name__} holds no histogram gradient boosting to search")
    return found[0]


def uncalibrated(model: Pipeline) -> Pipeline:
    """The classifier without its calibration (cross-validated, so many times the cost): the
    same steps with the gradient boosting alone in place of the last."""
    boosting = model.get_params(deep=True)[boosting_key(model)]
    return Pipeline([*model.steps[:-1], (model.steps[-1][0], clone(boosting))])


def search_parameters(
    model: BaseEstimator,
    features: pd.DataFrame,
    target: np.ndarray,
    policy: SearchPolicy,
    seed: int,
) -> SearchOutcome:
    """The searched parameters' best values for `model` on this data, within `policy.budget_s`;
    the model's own values, and the reason, when not one candidate finished."""
    started = time.monotonic()
    key = boosting_key(model)
    classes = np.unique(target) if is_classifier(model) else None
    timed = (_TimedRegressor if classes is None else _TimedClassifier)(
        model, started + policy.budget_s
    )
    folds = (KFold if classes is None else StratifiedKFold)(
        policy.cv, shuffle=True, random_state=seed
    )
    space = {
        f"estimator__{key}__{name}": _LogUniform(*bounds, integer=name == "max_leaf_nodes")
        for name, bounds in policy.space().items()
    }
    score = _Score(classes)
    search = HalvingRandomSearchCV(
        timed, space, n_candidates=policy.candidates, factor=policy.factor, cv=folds,
        scoring=score, refit=False, error_score=np.nan, random_state=seed, n_jobs=1,
        min_resources="exhaust",
    )  # fmt: skip
    fallback = ""
    try:
        with warnings.catch_warnings(), threadpool_limits(1, user_api="openmp"):
            warnings.simplefilter("ignore", UserWarning)  # NaN scores past the deadline
            search.fit(features, target)
    except ValueError as error:  # too few rows (or a class too small) for the folds
        fallback = f"the search could not run: {error}"
    results = getattr(search, "cv_results_", None)
    chosen, round_, best = _best(results, key) if results is not None else (None, None, None)
    own = model.get_params(deep=True)[key].get_params()
    if chosen is None:
        fallback = fallback or "no candidate finished every fold within the budget"
        chosen = {name: own[name] for name in policy.space()}
    summary = SearchSummary(
        scoring="neg_log_loss" if classes is not None else "neg_mean_absolute_error",
        candidates=policy.candidates,
        rounds=int(getattr(search, "n_iterations_", 0)),
        rows_per_round=[int(n) for n in getattr(search, "n_resources_", [])],
        scored=int(np.isfinite(results["mean_test_score"]).sum()) if results is not None else 0,
        skipped_fits=score.skipped,
        chosen_round=round_,
        best_score=best,
        elapsed_s=round(time.monotonic() - started, 3),
        budget_s=policy.budget_s,
        cut_short=score.skipped > 0,
        fallback=fallback,
    )
    LOG.info("search chose %s: %s", chosen, summary)
    return SearchOutcome(chosen, summary)


def _best(
    results: dict[str, np.ndarray], key: str
) -> tuple[dict[str, float | int] | None, int | None, float | None]:
    """The best candidate of the last round with a finished one, its round (1-based), its score."""
    rounds = np.asarray(results["iter"])
    scores = np.asarray(results["mean_test_score"], dtype=float)
    finished = np.isfinite(scores)
    if not finished.any():
        return None, None, None
    last = rounds[finished].max()
    in_last = np.flatnonzero((rounds == last) & finished)
    best = int(in_last[np.argmax(scores[in_last])])
    prefix = f"estimator__{key}__"
    params = {name.removeprefix(prefix): value for name, value in results["params"][best].items()}
    return params, int(last) + 1, float(scores[best])
