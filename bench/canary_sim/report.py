"""Figures per run and rule, the markdown tables, and the new verdict's targets."""

from __future__ import annotations

import numpy as np

from bench.canary_sim.model import CANARY_SHARE, LOG_PRICE, LOG_PRICE_SD, PREDICTION_LOG_SD
from bench.canary_sim.model import STABLE_ERROR_RATE as ERR
from bench.canary_sim.rules import PROMOTE, ROLLBACK, UNDECIDED, WINDOW
from tasks.decisions.sequential import fixed_horizon_n

RULES = {"new": "NEW", "before": "BEFORE", "flagger": "FLAGGER-style"}
CHECKS = {  # the verdicts' checks in order, as the bits of Outcome.reasons
    "new": ("error_rate", "error_rate_excess", "latency_p95", "accuracy", "prediction_shift"),
    "before": (
        "error_rate",
        "error_rate_excess",
        "latency_slo",
        "latency_ratio",
        "accuracy",
        "prediction_shift",
    ),
    "flagger": (),
}
FAMILIES = {
    "identical": "Identical versions",
    "loss": "Labelled loss (canary's absolute error × (1 + x))",
    "errors": "Error rate 0.1% → 2%",
    "shift": "Prediction shift (canary predictions × (1 + s))",
}


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


def figures(outcome: dict[str, np.ndarray], checks: tuple[str, ...]) -> dict:
    """Shares of each outcome and medians over the canaries decided on evidence."""
    action = outcome["action"]
    n = action.size
    decided = (action == PROMOTE) | (action == ROLLBACK)
    labels, before = outcome["labels"][decided], outcome["labels_before"][decided]
    reasons = outcome["reasons"][action == ROLLBACK]
    return {
        "canaries": n,
        "rollback_evidence": int((action == ROLLBACK).sum()),
        "promote": int((action == PROMOTE).sum()),
        "window_ended": int((action == WINDOW).sum()),  # undecided; rolled back by the window
        "undecided": int((action == UNDECIDED).sum()),  # still open (Flagger past the window)
        "rollback_evidence_pct": 100 * float((action == ROLLBACK).mean()),
        "promote_pct": 100 * float((action == PROMOTE).mean()),
        "undecided_at_window_end_pct": 100
        * float(((action == WINDOW) | (action == UNDECIDED)).mean()),
        "median_canary_requests": _median(outcome["requests"][decided]),
        "median_seconds": _median(outcome["seconds"][decided]),
        "median_labelled_rows": _median(labels) if labels.size and labels.min() >= 0 else None,
        "median_labelled_rows_look_before": (
            _median(before) if before.size and before.min() >= 0 else None
        ),
        "rollbacks_by_check": {
            name: int(((reasons >> bit) & 1).sum()) for bit, name in enumerate(checks)
        },
    }


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _by_check(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items() if n) or "—"


def table(family: str, runs: list[dict]) -> str:
    lines = [
        f"### {FAMILIES[family]}",
        "",
        "| scenario | req/s | labels | rule | rollback on evidence | promote "
        "| undecided at window end (→ rollback) | median canary requests | median s "
        "| median labelled rows | rollbacks on evidence by check |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        for rule, name in RULES.items():
            r = run["rules"][rule]
            lab = f"{run['label_fraction']:.0%}"
            if rule == "new":
                name += " (labels required)" if run["require_labels"] else " (labels optional)"
            lines.append(
                f"| {run['title']} | {run['rps']:g} | {lab} | {name} "
                f"| {r['rollback_evidence_pct']:.1f}% | {r['promote_pct']:.1f}% "
                f"| {r['undecided_at_window_end_pct']:.1f}% | {_fmt(r['median_canary_requests'])} "
                f"| {_fmt(r['median_seconds'])} | {_fmt(r['median_labelled_rows'])} "
                f"| {_by_check(r['rollbacks_by_check'])} |"
            )
    return "\n".join(lines)


def fixed_horizon(loss_increase: float, rows: int, seed: int, alpha=0.05, beta=0.05) -> dict:
    """n of a one-look test for the effect on absolute error, from a large simulated sample."""
    rng = np.random.default_rng(seed)

    def loss(factor: float) -> np.ndarray:
        y = np.exp(LOG_PRICE + LOG_PRICE_SD * rng.standard_normal(rows))
        return np.abs(y * np.exp(PREDICTION_LOG_SD * rng.standard_normal(rows)) - y) * factor

    stable, canary = loss(1.0), loss(1 + loss_increase)
    effect = float(canary.mean() - stable.mean())
    sd = float(np.sqrt(canary.var(ddof=1) / CANARY_SHARE + stable.var(ddof=1) / (1 - CANARY_SHARE)))
    n = fixed_horizon_n(effect, sd, alpha, beta)
    return {
        "loss_increase": loss_increase,
        "effect": effect,
        "sd_psi": sd,
        "alpha": alpha,
        "beta": beta,
        "n_fixed": n,
        "rows": rows,
        "mean_stable": float(stable.mean()),
        "mean_canary": float(canary.mean()),
    }


def targets(runs: list[dict], fixed: dict) -> list[dict]:
    """PASS/FAIL lines for the new verdict."""
    out = []

    def line(ok: bool, text: str, **data) -> None:
        out.append({"pass": bool(ok), "text": text, **data})

    for run in runs:
        r, where = run["rules"]["new"], f"{run['rps']:g} req/s, labels {run['label_fraction']:.0%}"
        if run["scenario"] == "identical":
            line(
                r["rollback_evidence_pct"] <= 5.0,
                f"identical, {where}: rolled back on evidence {r['rollback_evidence']}/"
                f"{r['canaries']} = {r['rollback_evidence_pct']:.1f}% (≤ 5%); separately, rolled "
                f"back because the window ended undecided: {r['undecided_at_window_end_pct']:.1f}%",
                run=run["id"],
            )
        if run["scenario"] in ("loss+20%", "loss+40%"):
            cap = 5.0 if run["scenario"] == "loss+20%" else 1.0
            line(
                r["promote_pct"] <= cap,
                f"{run['title']}, {where}: promoted {r['promote']}/{r['canaries']} = "
                f"{r['promote_pct']:.1f}% (≤ {cap:g}%)",
                run=run["id"],
            )
        if run["scenario"] == "loss+40%" and r["median_labelled_rows"] is not None:
            f = run["label_fraction"]
            ratio = r["median_labelled_rows"] / fixed["n_fixed"]
            fixed_requests = fixed["n_fixed"] * CANARY_SHARE / (f * (1 - ERR))
            req_ratio = r["median_canary_requests"] / fixed_requests
            line(
                ratio <= 1.5,
                f"{run['title']}, {where}: median labelled rows at the decision "
                f"{r['median_labelled_rows']:,.0f} = {ratio:.2f}× n_fixed {fixed['n_fixed']:,.0f} "
                f"(≤ 1.5×; at the look before: {r['median_labelled_rows_look_before']:,.0f} = "
                f"{r['median_labelled_rows_look_before'] / fixed['n_fixed']:.2f}×); in canary requests {r['median_canary_requests']:,.0f} = "
                f"{req_ratio:.2f}× the {fixed_requests:,.0f} a fixed test needs "
                f"(label delay included)",
                run=run["id"],
                ratio=ratio,
                request_ratio=req_ratio,
            )
    return out
