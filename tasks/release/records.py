"""Verdict records: every canary decision stored with its inputs, so it can be explained and replayed.

    reports/<model>/canary/<YYYYmmddTHHMMSSffffff>-v<canary>.json

A record holds both versions' evidence, the policy and the verdict. `explain` prints the
decision from it; `replay` runs it through `decide_canary` again, which must give the same answer
(the verdict is a pure function of what is stored).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from tasks.decisions.canary import CanaryPolicy, CanaryVerdict, VersionEvidence, decide_canary
from tasks.s3 import ObjectStore


class VerdictRecord(BaseModel):
    """What the canary analysis saw and decided at one look."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    decided_at: datetime
    window_since: datetime
    stable: VersionEvidence
    canary: VersionEvidence
    policy: CanaryPolicy
    verdict: CanaryVerdict


def records_prefix(model: str) -> str:
    return f"reports/{model}/canary/"


def save_record(store: ObjectStore, record: VerdictRecord) -> str:
    """Write the record once under a key sortable by time; returns the key."""
    stamp = record.decided_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
    key = f"{records_prefix(record.model)}{stamp}-v{record.verdict.canary_version}.json"
    store.put_bytes(key, record.model_dump_json(indent=2).encode(), "application/json")
    return key


def load_record(store: ObjectStore, model: str, at: datetime | None = None) -> VerdictRecord:
    """The last verdict decided at or before `at` (the latest when None)."""
    keys = sorted(k for k in store.list_keys(records_prefix(model)) if k.endswith(".json"))
    if at is not None:
        limit = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
        keys = [k for k in keys if k.rsplit("/", 1)[-1].split("-", 1)[0] <= limit]
    if not keys:
        when = f" at or before {at:%Y-%m-%d %H:%M:%S}" if at else ""
        raise LookupError(f"no canary verdict recorded for {model}{when}")
    return VerdictRecord.model_validate(json.loads(store.get_bytes(keys[-1])))


def replay(record: VerdictRecord) -> CanaryVerdict:
    """Decide again from the stored inputs."""
    return decide_canary(record.stable, record.canary, record.policy)


def _bound(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4g}"


def explain(record: VerdictRecord) -> str:
    """The decision as a person reads it: action, why, each check with its interval and size."""
    v, p = record.verdict, record.policy
    lines = [
        f"{record.model}: canary v{v.canary_version} vs stable v{v.stable_version}:"
        f" {v.action.upper()} ({v.basis}) at {record.decided_at:%Y-%m-%d %H:%M:%S} UTC",
        f"window   since {record.window_since:%Y-%m-%d %H:%M:%S} UTC,"
        f" {v.evidence.canary_elapsed_s:.0f} s; requests canary {v.evidence.canary_requests},"
        f" stable {v.evidence.stable_requests}; labelled rows canary {v.evidence.canary_labels},"
        f" stable {v.evidence.stable_labels}",
        f"policy   α={p.alpha} (split over {len(v.checks)} checks), β={p.beta};"
        f" accuracy verified: {'yes' if v.accuracy_verified else 'NO'}",
        "why",
        *(f"  - {reason}" for reason in v.reasons),
        "checks   name                status      estimate   lower(α)   upper(β)   "
        "worse>   margin<   n",
    ]
    for c in v.checks:
        lines.append(
            f"         {c.name:<19} {c.status:<11} {_bound(c.estimate):>9}  {_bound(c.lower):>9}"
            f"  {_bound(c.upper):>9}  {c.worse_above:>7.4g}  {c.margin:>7.4g}  {c.n}"
            + ("" if c.required else "  (not required)")
        )
    return "\n".join(lines)
