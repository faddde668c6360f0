"""The guard's verdict: is a promoted champion's labelled loss worse than the one it replaced?

Pure, like `canary`. After a promotion the guard compares the new champion's per-row loss (every
row it served, canary window included, as labels arrive) with the previous champion's recorded
loss: by default the rows it served beside the canary — a randomized split, so the same users and
the same drift, which an older baseline would not be. The same always-valid interval as the
canary's accuracy check decides (see `sequential`):
- rolled back with probability at most α when the new champion is no worse;
- kept ("verified") with probability at most β when it is worse by `max_loss_increase` or more.
The guard watches for `window_s`; still undecided then, it stops and the champion stays — a
promotion is only undone on evidence.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.decisions.sequential import Moments, best_rho2, difference

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class GuardPolicy(BaseModel):
    """Error rates, margin and window of the guard."""

    model_config = _FROZEN

    alpha: float = Field(0.05, gt=0, lt=0.5, description="False-rollback rate of the guard.")
    beta: float = Field(0.05, gt=0, lt=0.5, description="Keeping a worse champion, at the margin.")
    max_loss_increase: float = Field(
        0.10, gt=0, description="Labelled loss margin, relative to the previous champion."
    )
    min_samples: int = Field(30, ge=2, description="Labelled rows needed per version.")
    tuned_for: int = Field(2000, ge=10, description="Rows at which the bounds are tightest.")
    window_s: float = Field(86400.0, gt=0, description="How long the guard watches a champion.")
    baseline_s: float = Field(
        0.0,
        ge=0,
        description="Seconds before the canary started from which the previous champion's loss"
        " also counts; 0 = only the rows it served beside the canary (the same population).",
    )
    poll_s: float = Field(5.0, gt=0, le=3600, description="Seconds between the guard's looks.")


class GuardVerdict(BaseModel):
    """Roll back, keep (shown not worse, or window over), or keep watching, with the interval."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["rollback", "verified", "expired", "watch"]
    champion: int
    previous: int
    champion_rows: int
    previous_rows: int
    estimate: float | None = Field(description="Relative loss change, champion vs previous.")
    lower: float | None = Field(description="Lower end of the rollback interval (level α).")
    upper: float | None = Field(description="Upper end of the keep interval (level β).")
    elapsed_s: float
    reason: str


def decide_guard(
    previous: tuple[int, Moments],
    champion: tuple[int, Moments],
    elapsed_s: float,
    policy: GuardPolicy,
) -> GuardVerdict:
    """`previous` and `champion` are (version, per-row loss moments)."""
    (old, base), (new, now) = previous, champion
    common = {"champion": new, "previous": old, "champion_rows": now.n,
              "previous_rows": base.n, "elapsed_s": elapsed_s}  # fmt: skip
    if min(now.n, base.n) < policy.min_samples:
        reason = f"{now.n} labelled rows for v{new}, {base.n} for v{old}:"
        reason += f" {policy.min_samples} each needed"
        return _verdict(policy, elapsed_s, common, reason, None)
    low = difference(now, base, alpha=policy.alpha, rho2=best_rho2(policy.tuned_for, policy.alpha))
    high = difference(
        now, base, alpha=policy.beta, rho2=best_rho2(policy.tuned_for, policy.beta),
        weight=1 + policy.max_loss_increase,
    )  # fmt: skip
    scale = base.mean if base.mean > 0 else 1.0
    rel = (low.estimate / scale, low.lower / scale, high.upper / scale + policy.max_loss_increase)
    text = f"v{new} loss {now.mean:.4g} vs v{old} {base.mean:.4g} ({rel[0]:+.1%},"
    text += f" bounds [{rel[1]:+.1%}, {rel[2]:+.1%}], margin +{policy.max_loss_increase:.0%},"
    text += f" n={now.n}/{base.n})"
    if low.lower > 0:
        return _result("rollback", common, rel, f"{text}: worse than the champion it replaced")
    if high.upper < 0:
        return _result("verified", common, rel, f"{text}: shown not worse")
    return _verdict(policy, elapsed_s, common, f"{text}: not yet known", rel)


def _verdict(policy: GuardPolicy, elapsed_s: float, common: dict, reason: str, rel) -> GuardVerdict:
    if elapsed_s >= policy.window_s:
        reason = f"{reason}; guard window of {policy.window_s:.0f} s over, champion kept"
        return _result("expired", common, rel, reason)
    return _result("watch", common, rel, reason)


def _result(action, common, rel, reason) -> GuardVerdict:
    estimate, lower, upper = rel if rel else (None, None, None)
    return GuardVerdict(
        action=action, estimate=estimate, lower=lower, upper=upper, reason=reason, **common
    )
