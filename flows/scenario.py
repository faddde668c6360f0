"""The end-to-end scenario the main job plays: each step runs real flows and checks the outcome."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect.states import State

from flows.ci_checks import ci_checks
from flows.retrain import retrain
from infra.local_stack import LocalStack
from tasks.registry import ModelRegistry
from tasks.s3 import connect
from tasks.settings import get_settings
from tasks.synthetic import CorruptionSpec, DriftSpec, generate_house_prices


@dataclass
class Step:
    name: str
    expected: str
    observed: str
    ok: bool
    seconds: float
    flow_run_id: str | None = None


@dataclass
class Scenario:
    rows: int = 4000
    steps: list[Step] = field(default_factory=list)

    def run_flow(self, name: str, expected_ok: bool, call: Callable[[], State]) -> State:
        """Run one flow, record what happened against what the scenario expects."""
        print(f"▶ {name} ...", flush=True)
        started = time.monotonic()
        state = call()
        seconds = time.monotonic() - started
        completed = state.is_completed()
        observed = _describe(state) if completed else f"failed: {state.message}"
        step = Step(name, "completes" if expected_ok else "is refused", observed,
                    completed == expected_ok, seconds, str(state.state_details.flow_run_id))  # fmt: skip
        self.steps.append(step)
        print(f"  {'✔' if step.ok else '✘'} {observed[:300]}  ({seconds:.1f}s)", flush=True)
        return state

    def summary(self, stack: LocalStack, wall_seconds: float) -> str:
        settings = get_settings()
        registry = ModelRegistry(connect(settings), settings.model_name)
        lines = ["", "Timeline", "--------"]
        for index, step in enumerate(self.steps, 1):
            mark = "ok " if step.ok else "BAD"
            lines.append(
                f"{index:>2}. [{mark}] {step.name:<44} {step.seconds:6.1f}s  {step.observed[:90]}"
            )
            lines.append(f"      {stack.prefect_ui}/runs/flow-run/{step.flow_run_id}")
        versions = ", ".join(
            f"v{m.version} (r2 {m.metrics['r2']:.3f})" for m in registry.versions()
        )
        lines += [
            "",
            f"Registry   s3://{settings.bucket}/models/{settings.model_name}/ on {stack.s3_url}",
            f"  versions {versions or 'none'}",
            f"  aliases  {registry.aliases()}",
            f"  history  {len(registry.history())} alias moves",
            f"Prefect UI {stack.prefect_ui}  (flow runs, gate and validation artifacts, events)",
            f"Wall time  {wall_seconds:.1f}s; {sum(s.ok for s in self.steps)}/{len(self.steps)} steps as expected",
        ]
        return "\n".join(lines)


def _describe(state: State) -> str:
    result = state.result(raise_on_failure=False)
    if hasattr(result, "version") and hasattr(result, "metrics"):
        return (
            f"registered v{result.version} (r2 {result.metrics['r2']:.3f}, parent {result.parent})"
        )
    if hasattr(result, "passed"):
        return "gate passed" if result.passed else "gate failed"
    return str(result)[:200]


def publish_batch(name: str, frame) -> str:
    """Upload a generated batch to the bucket and return its s3:// URI."""
    settings = get_settings()
    store = connect(settings)
    store.ensure_bucket()
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    key = f"datasets/{settings.model_name}/{name}.csv"
    store.put_bytes(key, buffer.getvalue().encode(), "text/csv")
    return f"s3://{settings.bucket}/{key}"


def run_scenario(scenario: Scenario) -> bool:
    """The loop as far as it exists: every step must end the way the scenario expects."""
    settings = get_settings()
    rows = scenario.rows
    first = publish_batch("batch-001", generate_house_prices(rows, seed=1))
    scenario.run_flow(
        "CI checks on the first batch", True, lambda: ci_checks(data=first, return_state=True)
    )
    state = scenario.run_flow("retrain: first model", True,
                              lambda: retrain(data=first, reason="initial model", return_state=True))  # fmt: skip
    if state.is_completed():
        registry = ModelRegistry(connect(settings), settings.model_name)
        registry.set_alias("champion", state.result().version, "first model (no champion yet)")
    corrupt = publish_batch("batch-002-corrupt", generate_house_prices(
        rows, seed=2, corruption=CorruptionSpec(null_share=0.01, negative_size_share=0.02)))  # fmt: skip
    scenario.run_flow("retrain on a corrupt batch", False,
                      lambda: retrain(data=corrupt, reason="corrupt batch", return_state=True))  # fmt: skip
    shuffled = generate_house_prices(rows, seed=3)
    shuffled["price"] = shuffled["price"].sample(frac=1.0, random_state=3).to_numpy()
    noise = publish_batch("batch-003-shuffled-labels", shuffled)
    scenario.run_flow("retrain on shuffled labels (gate)", False,
                      lambda: retrain(data=noise, reason="label bug", return_state=True))  # fmt: skip
    drifted = publish_batch("batch-004-drifted", generate_house_prices(
        rows, seed=4, drift=DriftSpec(price_level=1.12, size_shift=0.15)))  # fmt: skip
    scenario.run_flow("retrain on drifted data vs champion", True,
                      lambda: retrain(data=drifted, reason="market moved", return_state=True))  # fmt: skip
    return all(step.ok for step in scenario.steps)
