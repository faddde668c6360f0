"""The new verdict and the old one, each fed the same simulated traffic of a batch of B canaries.

Outcome codes: 0 undecided, 1 promote, 2 rollback on evidence, 3 rollback because the window
(time or request cap) ended undecided.
"""

from __future__ import annotations

import numpy as np

from bench.baselines import canary_before as before
from bench.canary_sim.model import BUCKETS, Second, merge, moments
from bench.canary_sim.screen import STATUS, WAIT, Evidence, Screen
from tasks.decisions.canary import CanaryPolicy, VersionEvidence, decide_canary
from tasks.decisions.sequential import Moments

UNDECIDED, PROMOTE, ROLLBACK, WINDOW = 0, 1, 2, 3
LABEL_CAP = 5000  # the old verdict gets the most recent 5,000 labelled rows per version
RESERVOIR = 1000  # the old server's uniform prediction sample per version


class Outcome:
    """Per canary: decision code, look (s), canary requests and labelled rows at the decision,
    labelled rows at the look before, and a bitmask of the checks that failed (rollbacks)."""

    FIELDS = ("action", "seconds", "requests", "labels", "labels_before", "reasons")

    def __init__(self, b: int) -> None:
        self.action = np.zeros(b, np.int8)
        self.seconds = np.zeros(b, np.int32)
        self.requests = np.zeros(b, np.int64)
        self.labels = np.full(b, -1, np.int64)  # both arms' labelled rows behind the decision
        self.labels_before = np.full(b, -1, np.int64)
        self.reasons = np.zeros(b, np.int16)

    def record(
        self,
        i: int,
        action: int,
        t: int,
        requests: int,
        labels: int = -1,
        labels_before: int = -1,
        reasons: int = 0,
    ) -> None:
        self.action[i], self.seconds[i], self.requests[i] = action, t, requests
        self.labels[i], self.labels_before[i], self.reasons[i] = labels, labels_before, reasons

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.FIELDS}


def _mask(checks, bad: str) -> int:
    return sum(1 << n for n, check in enumerate(checks) if check.status == bad)


def _moments(m: np.ndarray) -> Moments:
    return Moments.model_construct(n=int(m[0]), mean=float(m[1]), m2=float(m[2]))


class NewRule:
    """The new verdict on cumulative sufficient statistics, screened by `Screen` (see there)."""

    def __init__(self, b: int, policy: CanaryPolicy, audit: float, rng: np.random.Generator):
        self.policy, self.screen, self.audit, self.rng = policy, Screen(policy), audit, rng
        self.requests = np.zeros((2, b), np.int64)
        self.errors = np.zeros((2, b), np.int64)
        self.hist = np.zeros((2, b, BUCKETS), np.int64)
        self.predictions = np.zeros((3, 2, b))
        self.losses = np.zeros((3, 2, b))
        self.arrived = np.zeros((2, b))  # labelled rows that arrived at the latest look
        self.active = np.ones(b, bool)
        self.out = Outcome(b)
        self.calls = self.audited = self.mismatches = 0
        self.examples: list[str] = []

    def add(self, arm: int, idx: np.ndarray, sec: Second, hist: np.ndarray) -> None:
        self.requests[arm, idx] += sec.requests
        self.errors[arm, idx] += sec.errors
        self.hist[arm, idx] += hist
        chunk = np.stack(moments(sec.answered, sec.prediction))
        self.predictions[:, arm, idx] = merge(self.predictions[:, arm, idx], chunk)

    def arrive(self, labels: np.ndarray) -> None:
        self.losses = merge(self.losses, labels)
        self.arrived = labels[0]

    def _evidence(self, arm: int, i: int, t: int) -> VersionEvidence:
        return VersionEvidence.model_construct(
            version=arm + 1,
            requests=int(self.requests[arm, i]),
            errors=int(self.errors[arm, i]),
            latency_counts=tuple(self.hist[arm, i].tolist()),
            predictions=_moments(self.predictions[:, arm, i]),
            losses=_moments(self.losses[:, arm, i]),
            loss_name="absolute error",
            elapsed_s=float(t),
        )

    def look(self, t: int) -> None:
        idx = np.flatnonzero(self.active)
        if not idx.size:
            return
        evidence = Evidence(
            self.requests[:, idx],
            self.errors[:, idx],
            self.hist[:, idx],
            self.predictions[:, :, idx],
            self.losses[:, :, idx],
            float(t),
        )
        action, status = self.screen.decide(evidence)
        call = action != WAIT
        if self.audit >= 1:
            call[:] = True
        elif self.audit > 0:
            audited = ~call & (self.rng.random(idx.size) < self.audit)
            self.audited += int(audited.sum())
            call |= audited
        for j in np.flatnonzero(call):
            self._call(int(idx[j]), t, int(action[j]), status[j])

    def _call(self, i: int, t: int, screened: int, status: np.ndarray) -> None:
        verdict = decide_canary(self._evidence(0, i, t), self._evidence(1, i, t), self.policy)
        self.calls += 1
        real = {"promote": PROMOTE, "wait": WAIT}.get(verdict.action)
        if real is None:
            real = ROLLBACK if verdict.basis == "evidence" else WINDOW
        checks = [STATUS[c.status] for c in verdict.checks]
        if real != screened or checks != status.tolist():
            self.mismatches += 1
            if len(self.examples) < 5:
                self.examples.append(
                    f"t={t} canary {i}: real {verdict.action}/{verdict.basis} "
                    f"{checks}, screen {screened} {status.tolist()}"
                )
        if real != WAIT:
            n = next(c for c in verdict.checks if c.name == "accuracy").n
            before_n = n - int(self.arrived[:, i].sum())
            self.out.record(
                i,
                real,
                t,
                verdict.evidence.canary_requests,
                n,
                before_n,
                _mask(verdict.checks, "worse"),
            )
            self.active[i] = False


class BeforeRule:
    """The old verdict: raw-latency p50/p95, a reservoir of predictions, labelled APEs."""

    def __init__(self, b: int, policy, delay: int, audit: float, rng: np.random.Generator):
        self.policy, self.delay, self.audit, self.rng = policy, delay, audit, rng
        self.requests = np.zeros((2, b), np.int64)
        self.errors = np.zeros((2, b), np.int64)
        self.seen = np.zeros((2, b), np.int64)
        self.reservoir = np.zeros((2, b, RESERVOIR))
        self.latency: list[list[list[np.ndarray]]] = [[[] for _ in range(b)] for _ in range(2)]
        self.ape = [[np.zeros(0) for _ in range(b)] for _ in range(2)]
        self.pending: dict[int, list[tuple[int, int, np.ndarray]]] = {}
        self.active = np.ones(b, bool)
        self.out = Outcome(b)
        self.calls = self.audited = self.mismatches = 0

    def add(self, arm: int, idx: np.ndarray, sec: Second, t: int) -> None:
        self.requests[arm, idx] += sec.requests
        self.errors[arm, idx] += sec.errors
        rows, labelled = np.cumsum(sec.answered), np.cumsum(sec.labelled)
        for j in np.flatnonzero(self.active[idx]):
            i = int(idx[j])
            a, z = rows[j] - sec.answered[j], rows[j]
            if z > a:
                self.latency[arm][i].append(sec.latency[a:z])
                self._sample(arm, i, sec.prediction[a:z])
            a, z = labelled[j] - sec.labelled[j], labelled[j]
            if z > a:
                self.pending.setdefault(t + self.delay, []).append((arm, i, sec.ape[a:z].copy()))

    def _sample(self, arm: int, i: int, values: np.ndarray) -> None:
        """Algorithm R, as the old model server kept its prediction sample."""
        seen, res = int(self.seen[arm, i]), self.reservoir[arm, i]
        take = min(max(RESERVOIR - seen, 0), values.size)
        res[seen : seen + take] = values[:take]
        rest = values[take:]
        if rest.size:
            slots = self.rng.integers(0, seen + take + np.arange(rest.size) + 1)
            for slot, value in zip(slots[slots < RESERVOIR], rest[slots < RESERVOIR], strict=True):
                res[slot] = value
        self.seen[arm, i] = seen + values.size

    def arrive(self, t: int) -> None:
        for arm, i, ape in self.pending.pop(t, []):
            if self.active[i]:
                self.ape[arm][i] = np.concatenate([self.ape[arm][i], ape])[-LABEL_CAP:]

    def _evidence(self, arm: int, i: int, t: int):
        chunks = self.latency[arm][i]
        if len(chunks) > 1:
            chunks[:] = [np.concatenate(chunks)]
        p50, p95 = (float(x) for x in np.percentile(chunks[0], [50, 95])) if chunks else (0, 0)
        return before.VersionEvidence.model_construct(
            version=arm + 1,
            requests=int(self.requests[arm, i]),
            errors=int(self.errors[arm, i]),
            latency_ms_p50=p50,
            latency_ms_p95=p95,
            predictions=tuple(self.reservoir[arm, i, : min(self.seen[arm, i], RESERVOIR)].tolist()),
            abs_pct_errors=tuple(self.ape[arm][i].tolist()),
            elapsed_s=float(t),
        )

    def look(self, t: int) -> None:
        """Calls the old verdict unless it must wait: it can only act once the canary has an
        error, `min_requests` requests, enough predictions or labels, or the window is spent."""
        idx = np.flatnonzero(self.active)
        if not idx.size:
            return
        p = self.policy
        preds = np.minimum(self.seen[:, idx], RESERVOIR).min(0)
        labels = np.array([min(self.ape[0][i].size, self.ape[1][i].size) for i in idx])
        req_c = self.requests[1, idx]
        call = (
            (self.errors[1, idx] > 0)
            | (req_c >= p.min_requests)
            | (preds >= p.min_prediction_samples)
            | (labels >= p.min_labeled_samples)
            | (req_c >= p.max_requests)
            | (t >= p.max_window_s)
        )
        audited = ~call & (self.rng.random(idx.size) < self.audit)
        self.audited += int(audited.sum())
        for j in np.flatnonzero(call | audited):
            i = int(idx[j])
            verdict = before.decide_canary(
                self._evidence(0, i, t), self._evidence(1, i, t), self.policy
            )
            self.calls += 1
            if verdict.action == "wait":
                continue
            if audited[j]:
                self.mismatches += 1
            window = verdict.action == "rollback" and "undecided after" in verdict.reasons[0]
            code = {"promote": PROMOTE, "rollback": WINDOW if window else ROLLBACK}[verdict.action]
            ev = verdict.evidence
            labels = ev.canary_labels + ev.stable_labels
            self.out.record(
                i, code, t, ev.canary_requests, labels, reasons=_mask(verdict.checks, "failed")
            )
            self.active[i] = False
            self.latency[0][i], self.latency[1][i] = [], []
            self.ape[0][i] = self.ape[1][i] = np.zeros(0)
