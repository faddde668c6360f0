"""Fault injection on serving: the real model server SIGKILLed under live traffic, then restarted.

The server is started as the local stack starts it (no split pinned on its command line), the
champion and a canary are put in place through its admin API and recorded in the registry's
aliases, as the release acts do. After the crash the same command runs again on the same port:
it must come back to the split the aliases describe, answer every request once ready, and the
serving logs must have lost at most what the killed process had not flushed yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from infra.local_s3 import S3Server
from tasks.data.contract import DataContract
from tasks.decisions.routing import ServeOptions, routing_from_aliases
from tasks.modelserver.client import LocalServingTarget
from tasks.settings import get_settings
from tests.support.live_traffic import Sent, ServedWorld, logged_once, serve_world

pytestmark = pytest.mark.integration

AREA = "fault injection"
FLUSH_S = 1.0  # the local stack's serving-log interval
SLACK_S = 0.5  # a flush's own write time, and the client seeing its answer after it was logged


@pytest.fixture
def world(s3_server: S3Server, contract: DataContract) -> Iterator[ServedWorld]:
    """Two real versions; v1 champion, v2 a 30% canary, set through the server and the aliases."""
    served = serve_world(s3_server, contract, 2, ServeOptions(log_flush_seconds=FLUSH_S))
    try:
        target = LocalServingTarget(served.server.url, served.model)
        first, second = served.manifests
        target.deploy_stable(first)
        served.registry.set_alias("champion", first.version, "first version")
        target.start_canary(second, 30)
        served.registry.set_alias("canary", second.version, "canary at 30%")
        yield served
    finally:
        served.server.stop()


def between(sent: list[Sent], start: float, end: float) -> list[Sent]:
    return [r for r in sent if start <= r.started < end]


def test_model_server_killed_under_traffic(world: ServedWorld, reliability) -> None:
    target = LocalServingTarget(world.server.url, world.model)
    before = target.state()
    with world.traffic() as sent:
        time.sleep(3.0)
        world.server.kill()
        killed_at = time.monotonic()
        time.sleep(1.0)
        world.server.restart()  # ready = the model is loaded (it loads before the port opens)
        ready_at = time.monotonic()
        time.sleep(3.0)
    after = target.state()
    flushed = world.flush()["flushed"]
    seen, most = logged_once(world.store, world.model, world.since)

    down = between(sent, killed_at, ready_at)
    once_ready = between(sent, ready_at, float("inf"))
    in_flight = [r for r in sent if r.started < killed_at <= r.at and not r.ok]
    settings = get_settings()
    expected = routing_from_aliases(world.registry.aliases(), settings.canary_percent)
    assert (before.stable_version, before.canary_version, before.canary_percent) == (1, 2, 30)
    assert (after.stable_version, after.canary_version) == (1, 2) and after.ready
    assert after.canary_percent == expected.canary_percent == settings.canary_percent
    failed_down = [r for r in down if not r.ok]
    back_at = min(r.at for r in sent if r.ok and r.started >= killed_at)
    assert failed_down and all(r.started < back_at for r in failed_down)
    assert once_ready and all(r.ok for r in once_ready)
    assert {r.version for r in once_ready} == {"1", "2"}
    reliability(
        AREA,
        "model server SIGKILLed under traffic, then restarted",
        done="2 clients with unique ids against the server (v1 champion, v2 canary at 30%, "
        "both in the aliases); SIGKILLed it after 3 s, restarted the same command 1 s later",
        expected="requests fail only while it is down; it comes back to the split the "
        "aliases describe; zero failures once ready",
        observed=f"first answer {back_at - killed_at:.1f}s after the kill (restart() saw it "
        f"ready after {ready_at - killed_at:.1f}s): {len(failed_down)} requests failed meanwhile "
        f"(connection refused), {len(in_flight)} in flight at the kill failed; after restart "
        f"stable v{after.stable_version}, canary v{after.canary_version} "
        f"at {after.canary_percent}% "
        f"(the aliases' canary at the configured MLOPS_CANARY_PERCENT; it was 30% before: a "
        f"share is not recorded in an alias); {len(once_ready)} requests once ready, "
        f"{sum(not r.ok for r in once_ready)} failed, served by v1 and v2",
    )

    answered = {r.request_id: r for r in sent if r.ok}
    lost = [r for rid, r in answered.items() if rid not in seen]
    start = killed_at - FLUSH_S - SLACK_S
    last_interval = [r for r in answered.values() if start <= r.at <= killed_at]
    one_interval = [r for r in answered.values() if killed_at - FLUSH_S <= r.at <= killed_at]
    assert flushed is True and most == 1
    assert all(r.at <= killed_at for r in lost), "only what the killed process held is lost"
    assert all(r.at >= start for r in lost)
    assert len(lost) <= len(last_interval)
    logged_not_answered = seen - set(answered)
    oldest_lost = killed_at - min((r.at for r in lost), default=killed_at)
    assert len(logged_not_answered) <= len(in_flight)
    reliability(
        AREA,
        "serving logs across a model-server crash",
        done=f"same run: request ids the clients got answers for, against the logs read back "
        f"from S3 after the restart and a flush (flush interval {FLUSH_S:.0f}s)",
        expected="lost: only rows the killed process had not flushed, at most one flush "
        "interval's worth; nothing duplicated; everything after the restart logged",
        observed=f"{len(answered)} answered, {len(lost)} lost, all answered in the last "
        f"{oldest_lost:.2f}s before the kill (the next interval starts when a write ends, so "
        f"the span is the interval plus a write); bound: {len(last_interval)} rows accepted in "
        f"the last interval + {SLACK_S}s ({len(one_interval)} in exactly {FLUSH_S:.0f}s); each id "
        f"logged at most {most}x; {len(logged_not_answered)} logged but unanswered (in flight)",
    )


def test_restart_with_a_canary_that_no_longer_verifies_serves_the_champion(
    world: ServedWorld, reliability
) -> None:
    key = f"{world.registry.prefix}v2/model.joblib"
    world.store.put_bytes(key, b"bytes that are not the registered model")  # corrupted at rest
    world.server.kill()
    world.server.restart()
    state = LocalServingTarget(world.server.url, world.model).state()
    with world.traffic() as sent:
        time.sleep(2.0)
    versions = {r.version for r in sent if r.ok}
    assert (state.stable_version, state.canary_version, state.ready) == (1, None, True)
    assert sent and all(r.ok for r in sent) and versions == {"1"}
    assert "canary v2 refused at start" in world.server.log_path.read_text(errors="replace")
    reliability(
        AREA,
        "restart while the aliased canary no longer verifies",
        done="overwrote the canary v2's model.joblib in S3, SIGKILLed and restarted the server "
        "(aliases: champion v1, canary v2)",
        expected="the server starts on the champion alone, names the refused canary in its log",
        observed=f"stable v{state.stable_version}, canary {state.canary_version}, ready "
        f"{state.ready}; {len(sent)} requests, {sum(not r.ok for r in sent)} failed, answered by "
        f"{sorted(versions)}",
    )
