"""The drift verdict as a pure function: each rule decides drift, or refuses to, when it should."""

import pytest
from pydantic import ValidationError

from tasks.decisions.drift import ColumnDrift, DriftPolicy, column_drifted, judge_drift
from tasks.drift.markdown import drift_markdown

POLICY = DriftPolicy(drift_share=0.3, min_judged_share=0.5, numeric_threshold=0.1,
                     categorical_threshold=0.2, unseen_share=0.01)  # fmt: skip
FEATURES = [f"f{i}" for i in range(10)]


def column(name: str, score: float | None = 0.01, role="feature", status="judged", **extra):
    threshold = extra.pop("threshold", 0.1)
    drifted = status == "judged" and score is not None and score >= threshold
    return ColumnDrift(name=name, role=role, kind=extra.pop("kind", "numeric"), method="psi",
                       status=status, score=score, threshold=threshold, drifted=drifted,
                       **extra)  # fmt: skip


def frame(drifted: int = 0, insufficient: int = 0) -> list[ColumnDrift]:
    """Ten features: the first `drifted` drift, the last `insufficient` could not be judged."""
    columns = []
    for index, name in enumerate(FEATURES):
        if index >= len(FEATURES) - insufficient:
            columns.append(column(name, None, status="insufficient", note="all NaN"))
        else:
            columns.append(column(name, 0.5 if index < drifted else 0.01))
    return columns


def test_no_drifted_column_is_no_drift():
    verdict = judge_drift(frame(), POLICY)
    assert (verdict.status, verdict.drifted, verdict.share) == ("no_drift", False, 0.0)
    assert verdict.drifted_columns == []


def test_share_at_threshold_is_drift_and_below_is_not():
    assert judge_drift(frame(drifted=3), POLICY).status == "drift"  # 30% >= 30%
    assert judge_drift(frame(drifted=2), POLICY).status == "no_drift"  # 20% < 30%


def test_reasons_name_share_columns_scores_and_thresholds():
    verdict = judge_drift(frame(drifted=3), POLICY)
    assert verdict.drifted_columns == ["f0", "f1", "f2"]
    assert verdict.reasons[0] == "30% of 10 judged features drifted (>= 30%)"
    assert "f0: psi 0.5 >= 0.1" in verdict.reasons


def test_unjudged_columns_leave_the_denominator():
    verdict = judge_drift(frame(drifted=2, insufficient=4), POLICY)  # 2 of 6 judged
    assert verdict.judged_features == 6
    assert verdict.share == pytest.approx(2 / 6)
    assert verdict.status == "drift"
    assert any("f9: not judged (all NaN)" in reason for reason in verdict.reasons)


def test_too_few_judged_features_is_insufficient_data_never_drift():
    verdict = judge_drift(frame(drifted=4, insufficient=6), POLICY)  # 4 of 4 judged drift
    assert (verdict.status, verdict.drifted) == ("insufficient_data", False)
    assert verdict.reasons[0].startswith("insufficient data: 4 of 10 features")


def test_no_features_is_insufficient_data():
    verdict = judge_drift([column("price", 0.9, role="target")], POLICY)
    assert (verdict.status, verdict.drifted) == ("insufficient_data", False)


@pytest.mark.parametrize("role", ["target", "prediction"])
def test_target_or_prediction_drift_alone_is_drift(role):
    columns = [*frame(), column("out", 0.4, role=role)]
    verdict = judge_drift(columns, POLICY)
    assert verdict.status == "drift"
    assert f"drift of {role} out" in verdict.reasons
    relaxed = POLICY.model_copy(update={"target_drift_is_drift": False})
    assert judge_drift(columns, relaxed).status == "no_drift"


def test_target_drift_does_not_count_in_the_feature_share():
    verdict = judge_drift([*frame(drifted=2), column("price", 0.4, role="target")], POLICY)
    assert verdict.share == pytest.approx(0.2)


def test_absent_target_is_not_judged_and_not_a_reason_for_drift():
    columns = [*frame(), column("price", None, role="target", status="absent", note="no labels")]
    assert judge_drift(columns, POLICY).status == "no_drift"


def test_a_column_drifts_on_its_score_or_on_unseen_categories():
    assert column_drifted(0.1, 0.1, 0.0, POLICY)
    assert not column_drifted(0.09, 0.1, 0.0, POLICY)
    assert column_drifted(0.0, 0.1, 0.01, POLICY)  # 1% unseen categories
    assert not column_drifted(0.0, 0.1, 0.009, POLICY)


def test_policy_is_frozen_and_constrained():
    with pytest.raises(ValidationError):
        DriftPolicy(drift_share=0)
    with pytest.raises(ValidationError):
        DriftPolicy(min_rows=0)
    with pytest.raises(ValidationError):
        DriftPolicy(method="ks")  # a p-value: higher would mean less drift
    with pytest.raises(ValidationError):
        POLICY.drift_share = 0.5
    assert POLICY.threshold("categorical") == 0.2
    assert all(field.description for field in DriftPolicy.model_fields.values())


def test_markdown_shows_verdict_table_and_link():
    columns = [*frame(drifted=3), column("city", 0.9, kind="categorical", threshold=0.2,
                                        unseen={"lakeside": 0.1}, unseen_share=0.1)]  # fmt: skip
    text = drift_markdown(judge_drift(columns, POLICY), columns, "https://s3/report.html")
    assert text.startswith("# Drift check: DRIFT")
    assert "[Evidently report](https://s3/report.html)" in text
    assert "| `f0` | feature | numeric | psi | 0.5 | 0.1 | **yes** |" in text
    assert "10.0% unseen: lakeside" in text
    unlinked = drift_markdown(judge_drift(frame(insufficient=8), POLICY), frame(insufficient=8))
    assert "# Drift check: insufficient data" in unlinked
    assert "Evidently report: not uploaded" in unlinked
