"""The quality gate on a classifier's evaluation: log loss carries the baseline, champion and
slice checks; accuracy and ROC AUC bars are off unless set; directional checks are reported as
skipped."""

import pytest

from tasks.decisions.gate import (
    BehaviourCheck,
    Evaluation,
    GatePolicy,
    SliceError,
    judge_candidate,
)

POLICY = GatePolicy()


def evaluation(log_loss: float = 0.2, **changes) -> Evaluation:
    base = {
        "rows": 400,
        "metrics": {"accuracy": 0.92, "log_loss": log_loss, "roc_auc": 0.97},
        "slices": [SliceError(column="site", value="a", rows=200, accuracy=0.9, log_loss=0.3)],
        "behaviour": [BehaviourCheck(kind="edge-cases", column=None, cases=2, failures=0,
                                     worst=0.0, detail="finite probabilities")],
        "baseline": {"accuracy": 0.6, "log_loss": 0.67, "roc_auc": 0.5},
        "task": "classification",
    }  # fmt: skip
    return Evaluation(**(base | changes))


def failed(verdict) -> set[str]:
    return {check.name for check in verdict.checks if not check.passed}


def test_a_sound_classifier_passes_and_the_verdict_says_what_was_skipped() -> None:
    verdict = judge_candidate(evaluation(), None, POLICY)
    assert verdict.passed, verdict.reasons
    names = {check.name for check in verdict.checks}
    assert {"log_loss vs baseline", "champion", "directional", "slice site=a log_loss"} <= names
    assert not {"accuracy", "roc_auc", "r2"} & names  # no absolute bar by default
    assert "directional checks are regression-only: skipped for classification" in verdict.reasons


def test_the_baseline_margin_is_on_log_loss() -> None:
    limit = 0.67 * 0.9
    assert judge_candidate(evaluation(log_loss=limit - 1e-9), None, POLICY).passed
    verdict = judge_candidate(evaluation(log_loss=limit + 0.01), None, POLICY)
    assert failed(verdict) == {"log_loss vs baseline"}
    (reason,) = verdict.reasons
    assert reason.startswith("log_loss 0.613 vs baseline (training class prior) log_loss 0.67:")
    assert reason.endswith("improvement 8.5% < the 10% required")


def test_losing_to_the_champion_s_log_loss_beyond_the_margin_is_refused() -> None:
    champion = evaluation(log_loss=0.2)
    within = judge_candidate(evaluation(log_loss=0.2039), champion, POLICY, champion_version=3)
    assert within.passed, within.reasons
    worse = judge_candidate(evaluation(log_loss=0.21), champion, POLICY, champion_version=3)
    assert failed(worse) == {"log_loss vs champion v3"}
    assert worse.reasons == [
        "log_loss vs champion v3 0.21 > 0.204 (champion v3 log_loss 0.2 + 2% margin)"
    ]


def test_a_champion_scored_as_a_regressor_is_not_compared_and_says_why() -> None:
    regressor = Evaluation(rows=400, metrics={"rmse": 1.0, "mae": 0.8, "r2": 0.5}, slices=[],
                           behaviour=[])  # fmt: skip
    verdict = judge_candidate(evaluation(), regressor, POLICY, champion_version=2)
    assert failed(verdict) == {"champion"}
    assert "scored as regression, the candidate as classification" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("bars", "name"), [({"min_accuracy": 0.95}, "accuracy"), ({"min_roc_auc": 0.99}, "roc_auc")]
)
def test_absolute_bars_block_when_set(bars: dict, name: str) -> None:
    verdict = judge_candidate(evaluation(), None, POLICY.model_copy(update=bars))
    assert failed(verdict) == {name}


def test_a_regression_bar_on_a_classifier_fails_and_says_why() -> None:
    verdict = judge_candidate(evaluation(), None, POLICY.model_copy(update={"min_r2": 0.5}))
    assert verdict.reasons == ["r2 bar 0.5 set, but r2 is undefined for this target"]


def test_slice_parity_on_log_loss() -> None:
    bad = SliceError(column="site", value="b", rows=100, accuracy=0.7, log_loss=0.45)
    small = SliceError(column="site", value="c", rows=10, accuracy=0.1, log_loss=3.0)
    verdict = judge_candidate(evaluation(slices=[bad, small]), None, POLICY)
    assert failed(verdict) == {"slice site=b log_loss"}  # 0.45 > 2 x 0.2; c is too small
    assert verdict.reasons == ["slice site=b log_loss 0.45 > 0.4 (2 x overall log_loss)"]
