"""One batch of canaries of one scenario × traffic × label fraction, one look per second."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench.baselines import canary_before as before
from bench.canary_sim.flagger import FlaggerRule
from bench.canary_sim.model import Scenario, arms, draw, histogram, moments
from bench.canary_sim.rules import BeforeRule, NewRule
from tasks.decisions.canary import CanaryPolicy


@dataclass(frozen=True)
class Batch:
    scenario: Scenario
    rps: float
    label_fraction: float
    canaries: int
    seed: int
    key: tuple[int, ...]  # spawn key of this batch's random streams
    window: int = 3600
    delay: int = 60
    audit: float = 0.01


def new_policy(label_fraction: float, window: int) -> CanaryPolicy:
    return CanaryPolicy(require_labels=label_fraction > 0, max_window_s=window)


def simulate(batch: Batch) -> dict:
    """Run every canary of the batch until all three rules decided or the window ended."""
    start = time.perf_counter()
    traffic, sampling, audit = (
        np.random.default_rng(s)
        for s in np.random.SeedSequence(batch.seed, spawn_key=batch.key).spawn(3)
    )
    b, f, rps = batch.canaries, batch.label_fraction, batch.rps
    new = NewRule(b, new_policy(f, batch.window), batch.audit, audit)
    old = BeforeRule(
        b, before.CanaryPolicy(max_window_s=batch.window), batch.delay, batch.audit, sampling
    )
    flagger = FlaggerRule(b, labels=f > 0)
    pending: dict[int, np.ndarray] = {}
    spent = dict.fromkeys(("traffic", "new", "before", "flagger"), 0.0)
    looks = 0
    for t in range(1, batch.window + 1):
        full = new.active | old.active
        if not (full | flagger.active).any():
            break
        clock = time.perf_counter()
        labels = np.zeros((3, 2, b))
        groups = ((np.flatnonzero(full), True), (np.flatnonzero(flagger.active & ~full), False))
        for idx, is_full in groups:
            if not idx.size:
                continue
            for arm, spec in enumerate(arms(batch.scenario)):
                sec = draw(traffic, idx.size, rps, spec, f, full=is_full, latency=arm == 1)
                hist = histogram(sec.answered, sec.latency) if sec.latency is not None else None
                if is_full:
                    new.add(arm, idx, sec, hist)
                    old.add(arm, idx, sec, t)
                if arm == 1:
                    flagger.add(idx, sec, hist)
                if f > 0:
                    labels[:, arm, idx] = moments(sec.labelled, sec.loss)
        if f > 0:
            pending[t + batch.delay] = labels
        arrived = pending.pop(t, None)
        if arrived is not None:
            new.arrive(arrived)
            flagger.arrive(arrived)
        old.arrive(t)
        looks += int(new.active.sum())
        spent["traffic"] += time.perf_counter() - clock
        for name, rule in (("new", new), ("before", old), ("flagger", flagger)):
            clock = time.perf_counter()
            rule.look(t)
            spent[name] += time.perf_counter() - clock
    return {
        "scenario": batch.scenario.key,
        "rps": rps,
        "label_fraction": f,
        "rules": {
            "new": new.out.as_dict(),
            "before": old.out.as_dict(),
            "flagger": flagger.out.as_dict(),
        },
        "checks": {
            "new_calls": new.calls,
            "new_looks": looks,
            "new_audited": new.audited,
            "new_mismatches": new.mismatches,
            "new_examples": new.examples,
            "before_calls": old.calls,
            "before_audited": old.audited,
            "before_mismatches": old.mismatches,
        },
        "seconds": {**spent, "total": time.perf_counter() - start},
    }
