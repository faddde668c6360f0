"""The quality gate as a pure function: each rule blocks a candidate when it should."""

import math

import pytest

from tasks.decisions.gate import GatePolicy, judge_candidate
from tasks.training.evaluation import BehaviourCheck, Evaluation, SliceError

POLICY = GatePolicy(min_improvement_over_baseline=0.10, champion_margin=0.02,
                    slice_error_factor=2.0, min_slice_rows=30, invariance_tolerance=0.05)  # fmt: skip
BARS = POLICY.model_copy(update={"min_r2": 0.85, "max_mape": 0.2})


def evaluation(
    rmse: float = 100.0, r2: float = 0.9, mape: float | None = 0.1, **changes
) -> Evaluation:
    metrics = {"rmse": rmse, "mae": rmse * 0.7, "r2": r2} | ({"mape": mape} if mape else {})
    base = {
        "rows": 500,
        "metrics": metrics,
        "slices": [SliceError(column="area", value="a", rows=200, mae=rmse * 0.7, rmse=rmse)],
        "behaviour": [
            BehaviourCheck(kind="directional", column="size", cases=300, failures=0, worst=0.0,
                           detail="bigger is dearer"),
            BehaviourCheck(kind="invariance", column="color", cases=300, failures=0, worst=0.01,
                           detail="color is irrelevant"),
        ],
        "baseline": {"rmse": 250.0, "mae": 200.0, "r2": -0.01},
    }  # fmt: skip
    return Evaluation(**(base | changes))


def failed(verdict) -> set[str]:
    return {check.name for check in verdict.checks if not check.passed}


def test_good_candidate_without_champion_passes_against_the_baseline() -> None:
    verdict = judge_candidate(evaluation(), None, POLICY)
    assert verdict.passed
    assert "no champion yet: judged against the baseline" in verdict.reasons
    assert {check.name for check in verdict.checks} >= {"mae vs baseline", "champion"}
    assert not {"r2", "mape", "rmse"} & {check.name for check in verdict.checks}  # bars are off


def test_the_default_policy_has_no_absolute_bar() -> None:
    policy = GatePolicy()
    assert (policy.min_r2, policy.max_mape, policy.max_rmse) == (None, None, None)
    assert policy.min_improvement_over_baseline == 0.10
    # R² 0.3 and MAPE 0.6 would have been refused by the old bars (0.85, 0.25).
    assert judge_candidate(evaluation(r2=0.3, mape=0.6), None, policy).passed


def test_a_candidate_no_better_than_the_baseline_is_refused_with_its_numbers() -> None:
    # MAE 189 against the median's 200: 5.5% better, short of the 10% required (limit 180).
    verdict = judge_candidate(evaluation(rmse=270.0), None, POLICY)
    assert failed(verdict) == {"mae vs baseline"}
    (check,) = [c for c in verdict.checks if not c.passed]
    assert (check.observed, check.threshold) == (pytest.approx(189.0), pytest.approx(180.0))
    assert verdict.reasons == [
        "mae 189 vs baseline (training median) mae 200: improvement 5.5% < the 10% required"
    ]


def test_the_baseline_margin_is_the_policy_s() -> None:
    assert judge_candidate(evaluation(rmse=270.0), None, POLICY.model_copy(
        update={"min_improvement_over_baseline": 0.05})).passed  # fmt: skip
    assert not judge_candidate(evaluation(rmse=250.0), None, POLICY.model_copy(
        update={"min_improvement_over_baseline": 0.2})).passed  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"baseline": None}, "no naive baseline was scored on this holdout"),
        ({"baseline": {"mae": 0.0, "rmse": 0.0, "r2": 0.0}}, "improvement -inf%"),
        ({"r2": -math.inf, "rmse": math.inf}, "mae inf vs baseline"),
    ],
)
def test_no_usable_baseline_or_candidate_is_refused(changes: dict, reason: str) -> None:
    verdict = judge_candidate(evaluation(**changes), None, POLICY)
    assert failed(verdict) == {"mae vs baseline"} | ({"slice area=a mae"} if "rmse" in changes
                                                     else set())  # fmt: skip
    assert reason in " ".join(verdict.reasons)


@pytest.mark.parametrize(
    ("changes", "name"),
    [({"r2": 0.84}, "r2"), ({"mape": 0.21}, "mape"), ({"r2": math.nan}, "r2")],
)
def test_absolute_bars_block_when_set(changes: dict, name: str) -> None:
    assert judge_candidate(evaluation(**changes), None, POLICY).passed
    verdict = judge_candidate(evaluation(**changes), None, BARS)
    assert not verdict.passed
    assert failed(verdict) == {name}


def test_a_mape_bar_on_a_target_without_mape_fails_and_says_why() -> None:
    verdict = judge_candidate(evaluation(mape=None), None, BARS)
    assert failed(verdict) == {"mape"}
    assert verdict.reasons == ["mape bar 0.2 set, but mape is undefined for this target"]


def test_rmse_bound_only_when_configured() -> None:
    strict = POLICY.model_copy(update={"max_rmse": 50.0})
    assert judge_candidate(evaluation(), None, POLICY).passed
    assert failed(judge_candidate(evaluation(), None, strict)) == {"rmse"}


def test_worse_than_champion_beyond_margin_is_refused() -> None:
    verdict = judge_candidate(evaluation(rmse=103.0), evaluation(rmse=100.0), POLICY, 7)
    assert not verdict.passed
    assert failed(verdict) == {"rmse vs champion v7"}
    assert any("champion v7 rmse 100" in reason for reason in verdict.reasons)


def test_within_margin_of_champion_passes() -> None:
    assert judge_candidate(evaluation(rmse=101.9), evaluation(rmse=100.0), POLICY, 7).passed


def test_champion_scored_on_another_holdout_is_not_compared() -> None:
    champion = evaluation(rmse=1000.0, rows=400)
    verdict = judge_candidate(evaluation(), champion, POLICY, 3)
    assert not verdict.passed
    assert "not scored on the same holdout" in " ".join(verdict.reasons)


def test_directional_failure_blocks() -> None:
    broken = BehaviourCheck(kind="directional", column="size", cases=300, failures=4, worst=0.1,
                            detail="bigger is dearer")  # fmt: skip
    verdict = judge_candidate(evaluation(behaviour=[broken]), None, POLICY)
    assert failed(verdict) == {"directional size"}
    assert "4/300 cases failed" in " ".join(verdict.reasons)


def test_invariance_above_tolerance_blocks() -> None:
    moved = BehaviourCheck(kind="invariance", column="color", cases=300, failures=0, worst=0.08,
                           detail="color is irrelevant")  # fmt: skip
    assert failed(judge_candidate(evaluation(behaviour=[moved]), None, POLICY)) == {
        "invariance color"
    }


def test_slice_parity_on_mae() -> None:
    # Overall MAE 70: a slice may reach 140. Negative targets are fine: MAE needs no sign.
    bad_slice = SliceError(column="area", value="b", rows=100, mae=150.0, rmse=1.0)
    fine_slice = SliceError(column="area", value="d", rows=100, mae=139.0, rmse=1.0)
    tiny_slice = SliceError(column="area", value="c", rows=5, mae=900.0, rmse=1.0)
    verdict = judge_candidate(
        evaluation(mape=None, slices=[bad_slice, fine_slice, tiny_slice]), None, POLICY
    )
    # the 5-row slice is too small to judge and is skipped.
    assert failed(verdict) == {"slice area=b mae"}
    assert "slice area=b mae 150 > 140 (2 x overall mae)" in verdict.reasons
    assert "slice area=c mae" not in {check.name for check in verdict.checks}


def test_every_check_carries_numbers() -> None:
    verdict = judge_candidate(evaluation(r2=0.5), evaluation(), BARS, 1)
    assert verdict.reasons[0] == "r2 0.5 < 0.85"
