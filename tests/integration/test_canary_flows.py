"""deploy → canary → canary-analysis → promote or roll back, against the real local model server.

Real SeaweedFS, a real Prefect server, the real KServe model server process; traffic and the
labels that arrive later come from `infra/traffic.py`. No human step between canary and verdict.
"""

import time
from collections.abc import Iterator

import pytest

from flows.canary_analysis import canary_analysis
from flows.deploy import deploy
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
from tests.support.models import HouseModels, register
from tests.support.specs import spec_for
from tests.support.stack import events_named

pytestmark = pytest.mark.integration


@pytest.fixture
def served(flow_env: Settings, s3_server, house_models: HouseModels, monkeypatch) -> Iterator[dict]:
    registry = ModelRegistry(connect(flow_env), flow_env.model_name)
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


def traffic(served: dict, settings: Settings, seed: int) -> Traffic:
    rows = generate_house_prices(3000, seed=seed)
    return Traffic(
        served["server"].url, settings.model_name, rows, "price", served["registry"].store
    )


def test_good_canary_promoted_bad_canary_rolled_back(served: dict, flow_env: Settings) -> None:
    registry, server = served["registry"], served["server"]
    target = LocalServingTarget(server.url, flow_env.model_name)
    assert deploy(version=served["v1"], reason="first") == "first"
    assert registry.aliases() == {"champion": served["v1"]}

    assert deploy(version=served["v2"], percent=30, reason="better") == "canary"
    assert target.state().canary_version == served["v2"]
    assert events_named("mlops.canary.started", flow_env.model_name)
    with traffic(served, flow_env, seed=50) as users:
        verdict = canary_analysis(max_wait_s=120)
    assert verdict.action == "promote", verdict.reasons
    assert users.report.failed == 0 and users.report.by_version[str(served["v2"])] > 0
    assert registry.aliases() == {"champion": served["v2"], "previous": served["v1"]}
    assert target.state().stable_version == served["v2"] and target.state().canary_version is None

    deploy(version=served["bad"], percent=30, reason="looks fine offline")
    with traffic(served, flow_env, seed=51) as users:
        verdict = canary_analysis(max_wait_s=120)
    assert verdict.action == "rollback", verdict.reasons
    assert users.report.failed == 0
    assert registry.alias("champion") == served["v2"] and registry.alias("canary") is None
    assert target.state().stable_version == served["v2"] and target.state().canary_version is None
    moves = [(m.alias, m.to_version) for m in registry.history()]
    assert ("canary", served["bad"]) in moves and moves[-1] == ("canary", None)
    (rolled,) = events_named("mlops.model.rolled-back", flow_env.model_name)
    assert rolled.payload["from_version"] == served["bad"]


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
