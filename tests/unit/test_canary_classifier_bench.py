"""bench/canary_classifier.py on a tiny configuration: the real verdict rolls back a much worse
classifier canary on labelled evidence, leaves an identical one alone, counts the same evidence
as the product's `version_evidence`, and writes the figures it promises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench import canary_classifier as bench
from bench.canary_classifier_sim import audit
from bench.canary_classifier_sim.run import Batch, simulate
from bench.canary_classifier_sim.world import Predictor
from bench.canary_sim.rules import PROMOTE, ROLLBACK


def test_the_bench_counts_the_evidence_the_product_counts() -> None:
    assert audit.compare(2, Predictor(temperature=0.5), seconds=10) == []
    assert audit.compare(3, Predictor(offset=0.5), seconds=10) == []


def test_a_much_worse_canary_with_all_labels_is_rolled_back_on_evidence() -> None:
    result = simulate(Batch(3, Predictor(temperature=0.2), 1.0, True, 8, 0, (0,), window=300,
                            delay=10))  # fmt: skip
    assert (result["outcome"]["action"] == ROLLBACK).all()
    assert result["checks"]["loss_mismatches"] == 0 and result["checks"]["loss_rows_audited"]


def test_an_identical_canary_is_promoted_not_rolled_back() -> None:
    result = simulate(Batch(2, Predictor(), 0.0, False, 8, 0, (1,), window=300))
    action = result["outcome"]["action"]
    assert not (action == ROLLBACK).any() and (action == PROMOTE).sum() >= 6


def test_a_tiny_run_writes_every_figure(tmp_path: Path, monkeypatch) -> None:
    cells = [c for c in bench.all_cells() if c["k"] == 2 and c["scenario"] == "shift+0.1"]
    monkeypatch.setattr(bench, "quick_cells", lambda: cells)
    out = tmp_path / "figures.json"
    args = ["--quick", "--canaries", "4", "--window", "240", "--workers", "1", "--json", str(out)]
    assert bench.main(args) == 0
    data = json.loads(out.read_text())
    assert {"config", "policy", "evidence_audit", "cells", "promise", "checks"} <= set(data)
    cell = data["cells"][0]
    assert (
        cell["promise"]["kind"] == "false promotion" and cell["effect"]["max_abs_shift_sd"] > 0.25
    )
    assert set(cell["figures"]) >= {"promote_pct", "rollback_evidence_pct", "rollback_window_pct",
                                    "median_seconds", "promote_wilson95"}  # fmt: skip
    assert np.isclose(sum(cell["figures"][k] for k in ("promote", "rollback_evidence",
                                                       "rollback_window")), 4)  # fmt: skip
