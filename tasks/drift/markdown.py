"""Markdown for the drift check's Prefect artifact: the verdict, its reasons, a column table, and
the values outside the data contract that the model server accepted."""

from __future__ import annotations

from tasks.decisions.drift import ColumnDrift, DriftVerdict, OffContract

HEADLINE = {"drift": "DRIFT", "no_drift": "no drift", "insufficient_data": "insufficient data"}
COLUMNS = ("column", "role", "type", "method", "score", "threshold", "drifted", "outside contract")


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _outside(counts: OffContract) -> str:
    """The table cell: how many current values the contract does not allow, and their share."""
    if not counts.checked:
        return "—"
    if not counts.count:
        return "0"
    cell = f"{counts.count} ({counts.share:.1%})"
    return f"**{cell}**" if counts.exceeded else cell


def _row(column: ColumnDrift) -> str:
    if column.status != "judged":
        drifted = f"not judged: {column.note}"
    else:
        drifted = "**yes**" if column.drifted else "no"
    if column.unseen:
        unseen = ", ".join(_escape(value) for value in column.unseen)
        drifted += f" ({column.unseen_share:.1%} unseen: {unseen})"
    cells = [
        f"`{column.name}`",
        column.role,
        column.kind,
        column.method,
        _number(column.score),
        _number(column.threshold),
        drifted,
        _outside(column.off_contract),
    ]
    return "| " + " | ".join(cells) + " |"


def _off_contract_section(verdict: DriftVerdict) -> str:
    if not verdict.off_contract:
        return ""
    outside = verdict.off_contract.items()
    lines = "\n".join(f"- `{name}`: {_escape(counts.describe())}" for name, counts in outside)
    return (
        "\n## Outside the data contract\n\n"
        "Values the model server accepted though the contract does not allow them (above the "
        f"tolerated share they drift their column):\n\n{lines}\n"
    )


def drift_markdown(
    verdict: DriftVerdict, columns: list[ColumnDrift], report_url: str | None = None
) -> str:
    """The artifact body; `report_url` is where the Evidently HTML report was uploaded."""
    share = "—" if verdict.share is None else f"{verdict.share:.0%}"
    link = f"[Evidently report]({report_url})" if report_url else "Evidently report: not uploaded"
    reasons = "\n".join(f"- {reason}" for reason in verdict.reasons)
    header = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    table = "\n".join([header, *(_row(column) for column in columns)])
    return (
        f"# Drift check: {HEADLINE[verdict.status]}\n\n"
        f"Drifted feature share {share} (dataset drift at {verdict.drift_share:.0%}), "
        f"{verdict.judged_features} features judged. {link}\n\n"
        f"## Reasons\n\n{reasons}\n\n## Columns\n\n{table}\n{_off_contract_section(verdict)}"
    )
