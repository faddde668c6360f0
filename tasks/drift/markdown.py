"""Markdown for the drift check's Prefect artifact: the verdict, its reasons, a column table."""

from __future__ import annotations

from tasks.decisions.drift import ColumnDrift, DriftVerdict

HEADLINE = {"drift": "DRIFT", "no_drift": "no drift", "insufficient_data": "insufficient data"}


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _row(column: ColumnDrift) -> str:
    if column.status != "judged":
        drifted = f"not judged: {column.note}"
    else:
        drifted = "**yes**" if column.drifted else "no"
    if column.unseen:
        unseen = ", ".join(value.replace("|", "\\|") for value in column.unseen)
        drifted += f" ({column.unseen_share:.1%} unseen: {unseen})"
    cells = [
        f"`{column.name}`",
        column.role,
        column.kind,
        column.method,
        _number(column.score),
        _number(column.threshold),
        drifted,
    ]
    return "| " + " | ".join(cells) + " |"


def drift_markdown(
    verdict: DriftVerdict, columns: list[ColumnDrift], report_url: str | None = None
) -> str:
    """The artifact body; `report_url` is where the Evidently HTML report was uploaded."""
    share = "—" if verdict.share is None else f"{verdict.share:.0%}"
    link = f"[Evidently report]({report_url})" if report_url else "Evidently report: not uploaded"
    reasons = "\n".join(f"- {reason}" for reason in verdict.reasons)
    header = "| column | role | type | method | score | threshold | drifted |\n|" + "---|" * 7
    table = "\n".join([header, *(_row(column) for column in columns)])
    return (
        f"# Drift check: {HEADLINE[verdict.status]}\n\n"
        f"Drifted feature share {share} (dataset drift at {verdict.drift_share:.0%}), "
        f"{verdict.judged_features} features judged. {link}\n\n"
        f"## Reasons\n\n{reasons}\n\n## Columns\n\n{table}\n"
    )
