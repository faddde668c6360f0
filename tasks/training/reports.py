"""Markdown for Prefect artifacts: what a person reads in the UI about a verdict."""

from __future__ import annotations

from tasks.data.validation import ValidationReport
from tasks.decisions.gate import GateVerdict
from tasks.training.evaluation import Evaluation


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def validation_markdown(report: ValidationReport) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    body = f"# Data validation: {verdict}\n\n{report.rows} rows against contract `{report.contract}`.\n"
    if report.violations:
        rows = [
            [v.column or "(data set)", v.rule, v.count, ", ".join(v.examples)]
            for v in report.violations
        ]
        body += "\n## Violations\n\n" + _table(["column", "rule", "count", "examples"], rows) + "\n"
    if report.warnings:
        rows = [[v.column or "(data set)", v.rule, v.count] for v in report.warnings]
        body += "\n## Tolerated\n\n" + _table(["column", "rule", "count"], rows) + "\n"
    return body


def gate_markdown(verdict: GateVerdict, candidate: Evaluation, model_name: str) -> str:
    status = "BLESSED" if verdict.passed else "REFUSED"
    against = (
        f"champion v{verdict.champion_version}"
        if verdict.champion_version
        else "no champion (the naive baseline and the policy's own bars only)"
    )
    rows = [[k, _number(v), _number((candidate.baseline or {}).get(k))]
            for k, v in candidate.metrics.items()]  # fmt: skip
    baseline = "training class prior" if candidate.task == "classification" else "training median"
    metrics = _table(["metric", "candidate", f"baseline ({baseline})"], rows)
    checks = _table(
        ["check", "result", "observed", "threshold", "reason"],
        [
            [
                c.name,
                "pass" if c.passed else "**FAIL**",
                _number(c.observed),
                _number(c.threshold),
                c.reason,
            ]
            for c in verdict.checks
        ],
    )
    return (
        f"# Quality gate for {model_name}: {status}\n\nCompared against {against} on the same "
        f"holdout of {candidate.rows} rows.\n\n## Metrics\n\n{metrics}\n\n## Checks\n\n{checks}\n"
    )
