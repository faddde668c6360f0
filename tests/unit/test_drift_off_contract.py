"""Values outside the data contract in the drift verdict: counted always, drift past a share."""

import pytest

from tasks.decisions.drift import (
    ColumnDrift,
    DriftPolicy,
    OffContract,
    column_drifted,
    judge_drift,
)
from tasks.drift.markdown import drift_markdown

POLICY = DriftPolicy(drift_share=0.3, min_judged_share=0.5, unseen_share=0.01)


def column(name: str, outside: OffContract | None = None, status="judged", score=0.01):
    outside = outside or OffContract()
    drifted = status == "judged" and column_drifted(score, 0.1, 0.0, POLICY, outside)
    return ColumnDrift(name=name, role="feature", kind="numeric", method="psi", status=status,
                       score=score if status == "judged" else None, threshold=0.1,
                       drifted=drifted, off_contract=outside, note="few rows")  # fmt: skip


def outside(unknown=0, below=0, above=0, checked=1000, tolerated=0.02) -> OffContract:
    return OffContract(checked=checked, unknown_categories=unknown, below_min=below,
                       above_max=above, tolerated=tolerated)  # fmt: skip


def test_share_counts_every_kind_and_only_above_the_tolerance_drifts():
    counts = outside(unknown=5, below=7, above=8)
    assert (counts.out_of_range, counts.count, counts.share) == (15, 20, 0.02)
    assert not counts.exceeded  # 2% is tolerated, as the contract's max_* rules read
    assert outside(above=21).exceeded
    assert not OffContract().exceeded and OffContract().share == 0.0
    assert outside(above=1, tolerated=0.0).exceeded  # a zero tolerance: any value drifts


def test_a_column_drifts_on_values_outside_the_contract_alone():
    assert column_drifted(0.0, 0.1, 0.0, POLICY, outside(unknown=30))
    assert not column_drifted(0.0, 0.1, 0.0, POLICY, outside(unknown=20))
    assert not column_drifted(0.0, 0.1, 0.0, POLICY)  # no counts: as before


def test_the_verdict_carries_every_count_and_names_those_that_did_not_drift():
    columns = [
        column("a", outside(unknown=60)),  # 6%: drifts
        column("b", outside(below=3)),  # 0.3%: counted only
        column("c", outside(above=9), status="insufficient"),
        *(column(f"f{i}") for i in range(3)),
    ]
    verdict = judge_drift(columns, POLICY)
    assert verdict.drifted_columns == ["a"] and verdict.status == "no_drift"  # 1 of 5 judged
    assert {name: c.count for name, c in verdict.off_contract.items()} == {"a": 60, "b": 3, "c": 9}
    assert any(
        r.startswith("a: psi 0.01 < 0.1; 60 of 1000 values outside") for r in verdict.reasons
    )
    assert (
        "b: psi 0.01 < 0.1; 3 of 1000 values outside the contract (3 below min; "
        "0.3% <= 2.0% tolerated)" in verdict.reasons
    )
    assert any(r.startswith("c: not judged (few rows); 9 of 1000") for r in verdict.reasons)


def test_insufficient_data_still_reports_the_counts():
    columns = [column("a", outside(above=50), status="insufficient"), column("b")]
    columns += [column(f"x{i}", status="insufficient") for i in range(3)]
    verdict = judge_drift(columns, POLICY)
    assert verdict.status == "insufficient_data"
    assert verdict.off_contract["a"].above_max == 50


def test_counts_serialise_with_their_totals():
    verdict = judge_drift([column("a", outside(below=2, above=3))], POLICY)
    dumped = verdict.model_dump(mode="json")["off_contract"]["a"]
    assert (dumped["below_min"], dumped["out_of_range"], dumped["share"]) == (2, 5, 0.005)


@pytest.mark.parametrize(
    ("counts", "cell"),
    [
        (outside(unknown=60), "| **60 (6.0%)** |"),
        (outside(below=3), "| 3 (0.3%) |"),
        (outside(), "| 0 |"),
        (OffContract(), "| — |"),
    ],
)
def test_markdown_shows_the_counts_per_column(counts, cell):
    columns = [column("a", counts), *(column(f"f{i}") for i in range(3))]
    text = drift_markdown(judge_drift(columns, POLICY), columns)
    (row,) = [line for line in text.splitlines() if line.startswith("| `a` |")]
    assert row.endswith(cell)
    assert ("## Outside the data contract" in text) == bool(counts.count)


def test_markdown_section_lists_each_column_with_examples():
    counts = OffContract(checked=200, unknown_categories=20, tolerated=0.02,
                         examples=["'lake|side'"])  # fmt: skip
    columns = [column("area", counts), *(column(f"f{i}") for i in range(3))]
    text = drift_markdown(judge_drift(columns, POLICY), columns)
    assert (
        "- `area`: 20 of 200 values outside the contract (20 unknown categories; "
        "10.0% > 2.0% tolerated; e.g. 'lake\\|side')" in text
    )
