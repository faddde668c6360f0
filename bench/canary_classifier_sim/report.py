"""Figures per cell, Wilson intervals, the verdict's promise for each cell, the printed table."""

from __future__ import annotations

import math

import numpy as np

from bench.canary_sim.rules import PROMOTE, ROLLBACK, UNDECIDED, WINDOW
from tasks.decisions.canary import CanaryPolicy

CHECKS = ("error_rate", "error_rate_excess", "latency_p95", "accuracy", "prediction_shift")


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion, in percent."""
    if not n:
        return 0.0, 100.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 100 * max(centre - half, 0.0), 100 * min(centre + half, 1.0)


def figures(outcome: dict[str, np.ndarray]) -> dict:
    action = outcome["action"]
    n = int(action.size)
    decided = (action == PROMOTE) | (action == ROLLBACK)
    counts = {
        "promote": int((action == PROMOTE).sum()),
        "rollback_evidence": int((action == ROLLBACK).sum()),
        "rollback_window": int((action == WINDOW).sum()),
        "undecided": int((action == UNDECIDED).sum()),
    }
    reasons = outcome["reasons"][action == ROLLBACK]
    return {
        "canaries": n,
        **counts,
        **{f"{k}_pct": 100 * v / n for k, v in counts.items() if k != "undecided"},
        "promote_wilson95": wilson(counts["promote"], n),
        "rollback_evidence_wilson95": wilson(counts["rollback_evidence"], n),
        "median_seconds": float(np.median(outcome["seconds"][decided])) if decided.any() else None,
        "median_canary_requests": (
            float(np.median(outcome["requests"][decided])) if decided.any() else None
        ),
        "rollbacks_by_check": {
            name: int(((reasons >> bit) & 1).sum()) for bit, name in enumerate(CHECKS)
        },
    }


def promise(cell: dict, policy: CanaryPolicy) -> dict:
    """What the verdict promises for this cell (canary.py's docstring), and whether it held.

    Rollback ≤ α when the canary is no worse on every check that can judge it: identical, or no
    labels and every watched class's mean shift inside the margin. Promotion ≤ β when it is worse
    by a margin on a required check: labelled loss ≥ +max_loss_increase with labels required and
    flowing, or some watched class shifted by ≥ max_prediction_shift SDs."""
    effect, f = cell["effect"], cell["label_fraction"]
    shifted = effect["max_abs_shift_sd"] >= policy.max_prediction_shift
    if cell["family"] == "identical" or (f == 0 and not shifted):
        kind, bound, event = "false rollback", policy.alpha, "rollback_evidence"
    elif shifted or (
        cell["require_labels"] and f > 0 and cell["target"] >= policy.max_loss_increase
    ):
        kind, bound, event = "false promotion", policy.beta, "promote"
    else:
        why = "labels optional" if f > 0 else "no labels"
        return {"kind": "none", "text": f"no promise ({why}, shift inside margin)"}
    r = cell["figures"]
    rate, (low, high) = r[f"{event}_pct"], r[f"{event}_wilson95"]
    holds = rate <= 100 * bound
    verdict = "holds" if holds else "BROKEN" if low > 100 * bound else "above bound, within noise"
    return {
        "kind": kind,
        "bound_pct": 100 * bound,
        "measured_pct": rate,
        "wilson95": (low, high),
        "holds": holds,
        "broken": low > 100 * bound,
        "text": f"{kind} {rate:.1f}% [{low:.1f}, {high:.1f}] vs ≤ {100 * bound:g}%: {verdict}",
    }


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def table(cells: list[dict]) -> str:
    lines = [
        "| classes | scenario (true effect) | labels | policy | promoted | rolled back on "
        "evidence | rolled back by window | median s | rollbacks by check | promise |",
        "|---:|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for c in cells:
        r, e = c["figures"], c["effect"]
        effect = f"log loss {e['log_loss_increase']:+.1%}, max shift {e['max_abs_shift_sd']:.2f} SD"
        checks = ", ".join(f"{k} {v}" for k, v in r["rollbacks_by_check"].items() if v) or "—"
        lines.append(
            f"| {c['k']} | {c['title']} ({effect}) | {c['label_fraction']:.0%} "
            f"| {'labels required' if c['require_labels'] else 'shipped'} "
            f"| {r['promote_pct']:.1f}% [{r['promote_wilson95'][0]:.1f}, "
            f"{r['promote_wilson95'][1]:.1f}] "
            f"| {r['rollback_evidence_pct']:.1f}% [{r['rollback_evidence_wilson95'][0]:.1f}, "
            f"{r['rollback_evidence_wilson95'][1]:.1f}] | {r['rollback_window_pct']:.1f}% "
            f"| {_fmt(r['median_seconds'])} | {checks} | {c['promise']['text']} |"
        )
    return "\n".join(lines)
