"""deploy → canary → canary-analysis → promote or roll back, against the real local model server.

Real SeaweedFS, a real Prefect server, the real KServe model server process; traffic and the
labels that arrive later come from `infra/traffic.py`. No human step between canary and verdict.
"""

import time
from collections.abc import Iterator

import pytest

from flows.canary_analysis import canary_analysis
from flows.cli import main as cli_main
from flows.deploy import deploy
from flows.guard import guard
from flows.rollback import rollback
from infra.model_server import start_model_server
from infra.traffic import Traffic
from tasks.data.contract import DataContract
from tasks.data.loading import data_digest
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import ServeOptions
from tasks.modelserver.client import LocalServingTarget
from tasks.registry.versions import ModelRegistry
from tasks.release.acts import ReleaseError
from tasks.s3 import connect
from tasks.settings import Settings
from tasks.training.model import train_model
from tests.support.keys import TEST_KEY
from tests.support.models import HouseModels, register
from tests.support.specs import spec_for
from tests.support.stack import events_named

pytestmark = pytest.mark.integration


@pytest.fixture
def served(flow_env: Settings, s3_server, house_models: HouseModels, monkeypatch) -> Iterator[dict]:
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.store.ensure_bucket()
    versions = {
        "v1": register(registry, house_models, 41, 1.0),
        "v2": register(registry, house_models, 42, 1.0),
        "bad": register(registry, house_models, 43, 1.6),
    }
    options = ServeOptions(log_flush_seconds=0.5)
    server = start_model_server(
        {**s3_server.env(), "MLOPS_MODEL_NAME": flow_env.model_name},
        flow_env.model_name,
        options=options,
    )
    monkeypatch.setenv("MLOPS_SERVING_URL", server.url)
    monkeypatch.setenv("MLOPS_CANARY_POLL_S", "0.5")
    try:
        yield {"registry": registry, "server": server, **versions}
    finally:
        server.stop()


def traffic(served: dict, settings: Settings, seed: int, **options: float) -> Traffic:
    rows = generate_house_prices(3000, seed=seed)
    return Traffic(
        served["server"].url, settings.model_name, rows, "price", served["registry"].store,
        **options,
    )  # fmt: skip


def test_good_canary_promoted_bad_canary_rolled_back(served: dict, flow_env: Settings) -> None:
    registry, server = served["registry"], served["server"]
    target = LocalServingTarget(server.url, flow_env.model_name)
    assert deploy(version=served["v1"], reason="first") == "first"
    assert registry.aliases() == {"champion": served["v1"]}

    assert deploy(version=served["v2"], percent=30, reason="better") == "canary"
    assert target.state().canary_version == served["v2"]
    assert events_named("mlops.canary.started", flow_env.model_name)
    with traffic(served, flow_env, seed=50) as users:
        verdict = canary_analysis(max_wait_s=120).verdict
    assert verdict.action == "promote", verdict.reasons
    assert users.report.failed == 0 and users.report.by_version[str(served["v2"])] > 0
    assert registry.aliases() == {"champion": served["v2"], "previous": served["v1"]}
    assert target.state().stable_version == served["v2"] and target.state().canary_version is None

    deploy(version=served["bad"], percent=30, reason="looks fine offline")
    with traffic(served, flow_env, seed=51) as users:
        record = canary_analysis(max_wait_s=120)
    verdict = record.verdict
    assert verdict.action == "rollback", verdict.reasons
    assert record.canary.requests > 0 and record.stable.requests > 0  # read from the S3 logs
    assert users.report.failed == 0
    assert registry.alias("champion") == served["v2"] and registry.alias("canary") is None
    assert target.state().stable_version == served["v2"] and target.state().canary_version is None
    moves = [(m.alias, m.to_version) for m in registry.history()]
    assert ("canary", served["bad"]) in moves and moves[-1] == ("canary", None)
    (rolled,) = events_named("mlops.model.rolled-back", flow_env.model_name)
    assert rolled.payload["from_version"] == served["bad"]
    assert canary_analysis(max_wait_s=5) is None  # a re-run with no canary has nothing to do


def test_explain_prints_each_recorded_verdict_and_replays_it(
    served: dict, flow_env: Settings, capsys
) -> None:
    deploy(version=served["v1"])
    deploy(version=served["bad"], percent=30)
    with traffic(served, flow_env, seed=55):
        record = canary_analysis(max_wait_s=120)
    assert record.verdict.action == "rollback"
    assert cli_main(["explain", flow_env.model_name]) == 0
    out = capsys.readouterr().out
    assert f"canary v{served['bad']} vs stable v{served['v1']}: ROLLBACK (evidence)" in out
    assert "replayed through decide_canary: ROLLBACK (the same verdict)" in out
    for check in ("error_rate", "latency_p95", "prediction_shift", "accuracy"):
        assert check in out
    assert cli_main(["explain", flow_env.model_name, "--at", "2001-01-01T00:00:00"]) == 1
    assert "no canary verdict recorded" in capsys.readouterr().out


def test_guard_rolls_back_a_champion_promoted_without_labels_that_labels_show_worse(
    served: dict, flow_env: Settings, house_models: HouseModels, contract: DataContract
) -> None:
    """Labels are withheld during the canary, so it is promoted on errors, latency and shift
    alone (a mean-preserving blur does not move the predictions' mean); once the labels arrive,
    the guard shows the new champion worse and puts the old one back, saying why."""
    from flows.scenario.faulty import Blurred

    registry = served["registry"]
    deploy(version=served["v1"])
    good = house_models.get(41)
    spec = spec_for(contract, digest=good.digest, rows=good.rows)
    blurred = registry.register(Blurred(good.model, 0.4), spec).version
    deploy(version=blurred, percent=50, reason="blurred")
    with traffic(served, flow_env, seed=53, label_every_s=1e9):  # labels attached at the end
        verdict = canary_analysis(max_wait_s=120).verdict
    assert verdict.action == "promote" and not verdict.accuracy_verified, verdict.reasons
    (promoted,) = events_named("mlops.model.promoted", flow_env.model_name)
    assert promoted.payload["accuracy_verified"] is False
    assert registry.alias("champion") == blurred

    with traffic(served, flow_env, seed=54):
        judged = guard(version=blurred, window_s=120)
    assert judged.action == "rollback", judged.reason
    assert registry.alias("champion") == served["v1"]
    last = [m for m in registry.history() if m.alias == "champion"][-1]
    assert last.to_version == served["v1"] and last.from_version == blurred
    assert "guard" in last.reason and "worse than the champion it replaced" in last.reason
    assert any(e.payload["from_version"] == blurred
               for e in events_named("mlops.model.rolled-back", flow_env.model_name))  # fmt: skip
    assert guard(version=blurred, window_s=5) is None  # a re-run converges: nothing to guard
    assert registry.alias("champion") == served["v1"]


def test_manual_rollback_restores_previous_then_refuses(served: dict, flow_env: Settings) -> None:
    registry, server = served["registry"], served["server"]
    deploy(version=served["v1"])
    deploy(version=served["v2"])
    registry.set_alias("canary", served["v2"], "test: promote without analysis")
    from tasks.release.acts import promote

    promote.fn(registry, LocalServingTarget(server.url, flow_env.model_name), "by hand")
    state = rollback(reason="customer complaints")
    assert state.stable_version == served["v1"]
    assert registry.alias("champion") == served["v1"] and registry.alias("previous") is None
    with pytest.raises(ReleaseError, match="nothing to roll back to"):
        rollback(reason="again")


def test_live_failover_is_announced_and_a_second_rollback_leaves_the_champion(
    served: dict, flow_env: Settings, contract: DataContract
) -> None:
    """A canary answering NaN on live traffic (not on the load-time probe) is taken out by the
    router at once; the server announces it, and rolling that canary back twice (the failover
    automation and the analysis racing) never touches the champion."""
    from bench.rollback import NaNAbove

    registry, server = served["registry"], served["server"]
    deploy(version=served["v1"])
    good = train_model(generate_house_prices(1500, seed=44), contract, seed=44).model
    frame = generate_house_prices(100, seed=44)
    spec = spec_for(contract, digest=data_digest(frame), rows=100)
    broken = registry.register(
        NaNAbove(good, "condition", 3.0), spec
    ).version  # probe stays below 3
    deploy(version=broken, percent=50)
    with traffic(served, flow_env, seed=52) as users:
        deadline = time.monotonic() + 60
        while LocalServingTarget(server.url, flow_env.model_name).state().canary_percent:
            assert time.monotonic() < deadline, "the router never took the broken canary out"
            time.sleep(0.1)
    assert users.report.failed == 0
    (event,) = events_named("mlops.serving.canary-failed", flow_env.model_name)
    assert event.payload["version"] == broken and "NaN" in event.payload["reason"]
    rollback(reason="failover", canary_version=broken)
    rollback(reason="analysis, late", canary_version=broken)  # a no-op: already rolled back
    assert registry.aliases() == {"champion": served["v1"]}
    assert (
        LocalServingTarget(server.url, flow_env.model_name).state().stable_version == served["v1"]
    )


def test_one_analysis_per_model_watches_its_canary(
    served: dict, flow_env: Settings, monkeypatch
) -> None:
    """The deployment's concurrency slots are shared by every model, so a model's analyses are
    kept apart by a lease of its own: a second one stands down ("Skipped") while the first
    holds it, and, the first done, the next one watches."""
    import flows.canary_analysis as analysis

    registry = served["registry"]
    deploy(version=served["v1"], reason="first")
    deploy(version=served["v2"], percent=30, reason="canary")
    monkeypatch.setattr(analysis, "SOLE_ANALYSIS_WAIT_S", 0.5)
    with registry.lock("canary-analysis"):  # another run of it, watching
        state = canary_analysis(max_wait_s=60, return_state=True)
    assert state.name == "Skipped" and "another canary analysis" in state.message
    assert registry.alias("canary") == served["v2"]  # left to the one watching
    record = canary_analysis(max_wait_s=3)  # nobody watches now: this one decides
    assert record is not None and record.verdict.action == "rollback"  # no traffic in 3 s
    assert registry.alias("canary") is None
