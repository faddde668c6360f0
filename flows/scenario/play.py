"""The end-to-end scenario: the self-healing loop driven by deployments, events and automations.

Only the outside world is played here — data arriving, users sending requests, the truth
arriving later, a daily check being run now, a bad model slipping through. Everything else
(retrain, deploy, canary analysis, promotion, rollback) happens because an event fired.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect.deployments import run_deployment

from flows.scenario.own_data import (
    CLASSIFIER_MODEL,
    USER_MODEL,
    publish_classifier,
    publish_user_model,
)
from flows.scenario.world import ScenarioFailed, World
from infra.traffic import Traffic
from tasks.registry.versions import open_registry
from tasks.settings import get_settings


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str


@dataclass
class Scenario:
    world: World
    timeout_s: float = 300.0
    steps: list[Step] = field(default_factory=list)

    def step(self, name: str, action: Callable[[], str]) -> None:
        """Run one step; its action returns what happened or raises ScenarioFailed."""
        print(f"▶ {name} ...", flush=True)
        started = time.monotonic()
        try:
            detail, ok = action(), True
        except ScenarioFailed as error:
            detail, ok = str(error), False
        seconds = time.monotonic() - started
        self.steps.append(Step(name, ok, seconds, detail))
        print(f"  {'✔' if ok else '✘'} {detail}  ({seconds:.1f}s)", flush=True)
        if not ok:
            raise ScenarioFailed(f"{name}: {detail}")

    def wait(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"timed out after {self.timeout_s:.0f}s waiting for {what}")
            time.sleep(0.5)


def _run(name: str, parameters: dict) -> str:
    run = run_deployment(name, parameters=parameters, timeout=600)
    if not run.state or not run.state.is_completed():
        raise ScenarioFailed(f"{name} ended {run.state.name if run.state else 'unknown'}")
    return run.name


def play(scenario: Scenario) -> None:
    """The loop, start to finish; raises ScenarioFailed at the first step that goes wrong."""
    w = scenario.world
    first = w.publish("batch-001", w.houses(seed=1))
    scenario.step(
        "CI checks on the first batch",
        lambda: "passed: " + _run("ci-checks/ci-checks", {"data": first}),
    )

    def first_model() -> str:
        _run("retrain/retrain", {"data": first, "reason": "initial model"})
        scenario.wait("v1 to be served as champion", lambda: w.champion_served(1))
        return "v1 registered → deploy (event) → served, champion"

    scenario.step("retrain v1 and serve it", first_model)
    users = Traffic(
        w.serving_url, w.model, w.houses(seed=2, rows=20000), w.target, w.store,
        max_requests=200_000,
    )  # fmt: skip
    users.__enter__()
    try:
        _play_drift_and_bad_model(scenario, users)
    finally:
        report = users.stop()
        w.traffic_reports.append(report)


def _play_drift_and_bad_model(scenario: Scenario, users: Traffic) -> None:
    w = scenario.world
    corrupt = w.publish("batch-002-corrupt", w.houses(seed=3, corrupt=True))

    def refused() -> str:
        run = run_deployment(
            "retrain/retrain", parameters={"data": corrupt, "reason": "corrupt"}, timeout=600
        )
        if run.state.is_completed():
            raise ScenarioFailed("a corrupt batch was accepted")
        return f"refused ({run.state.name}); champion still v{w.registry.alias('champion')}"

    scenario.step("a corrupt batch reaches retrain", refused)
    w.switch_traffic(users, w.houses(seed=5, rows=20000, drifted=True))

    def drift() -> str:
        # Nobody hands the loop a batch any more: the check reads the last minute of serving logs,
        # and the retrain it triggers learns from the labelled traffic (+ v1's training set).
        scenario.wait("a minute of drifted traffic, labelled", lambda: w.labelled_rows(60) >= 2000)
        _run("drift-check/drift-daily", {"window_hours": 1 / 60})
        w.emit_extra_drift_events(4)  # a burst: still one retrain
        scenario.wait("v2 to be promoted by the canary analysis", lambda: w.champion_served(2))
        rows = w.training_rows(2)
        return (
            f"drift in the logs → retrain ×{w.retrain_runs_by_event()} on {rows['traffic']}"
            f" labelled traffic rows + {rows['reference']} of v1's → v2 canary → promoted"
        )

    scenario.step("drift in the market: daily check run now", drift)

    def bad_model() -> str:
        version = w.register_bad_model()
        scenario.wait(f"v{version} to be rolled back", lambda: w.rolled_back(version))
        return f"v{version} canary → rolled back; champion v{w.registry.alias('champion')} serving"

    scenario.step("a worse model slips past the gate", bad_model)

    def guarded() -> str:
        champion = w.registry.alias("champion")
        with w.labels_withheld(users):
            version = w.register_blurred_model()
            scenario.wait(f"v{version} promoted without labels", lambda: w.champion_served(version))
        scenario.wait(f"the guard to put v{champion} back", lambda: w.champion_served(champion))
        return (
            f"v{version} (right on average, wrong per house) promoted without labels → labels"
            f" arrive → `guard` rolled it back; champion v{champion} again"
        )

    scenario.step("labels are late: a model only the truth can judge", guarded)
    scenario.step("registry, server and history agree", w.check_agreement)

    def second_model() -> str:
        uri, decisions = publish_user_model()
        run = _run("ci-checks/ci-checks", {"data": uri, "model_name": USER_MODEL})
        return (
            f"{USER_MODEL}: {len(decisions) - 2} columns and the task inferred from the CSV, the"
            f" configuration stored signed in the registry → {run}: contract and gate (vs the"
            " naive baseline) passed"
        )

    scenario.step("a second model from a user's CSV", second_model)

    def classifier() -> str:
        uri, rows = publish_classifier()
        if w.add_model_server is None:
            raise ScenarioFailed("the stack cannot start a model server for another model")
        url = w.add_model_server(CLASSIFIER_MODEL)
        _run("retrain/retrain", {"data": uri, "model_name": CLASSIFIER_MODEL,
                                 "reason": "a user's classifier"})  # fmt: skip
        scenario.wait(f"{CLASSIFIER_MODEL} v1 on its own server", lambda: w.serves(url, 1))
        answer = w.ask(url, CLASSIFIER_MODEL, rows)
        metrics = open_registry(get_settings(model_name=CLASSIFIER_MODEL)).manifest(1).metrics
        first = dict(zip(answer["classes"], answer["probabilities"][0], strict=True))
        return (
            f"{CLASSIFIER_MODEL}: class task inferred, v1 (holdout log loss"
            f" {metrics['log_loss']:.3f}, accuracy {metrics['accuracy']:.3f}) → deploy (event) →"
            f" its own model server {url} → {answer['predictions']}, row 1"
            f" {', '.join(f'P({c})={p:.2f}' for c, p in first.items())}"
        )

    scenario.step("a classifier from a user's CSV, served beside", classifier)
