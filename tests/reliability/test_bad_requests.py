"""Malformed prediction requests (V1 and V2) against the live model server serving the champion.

Each must get a 4xx, never a 5xx, with a body that names the problem; the server must count it as
no prediction at all (the per-version stats the canary analysis reads stay as they were) and then
answer a good request from the same version with the same price.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.corpus import BAD_CALLS, BadCall, Row

if TYPE_CHECKING:
    from tests.support.bad_world import World

pytestmark = pytest.mark.integration


@pytest.fixture
def world(bad_input_world: World) -> Iterator[World]:
    with bad_input_world.environment():
        yield bad_input_world


@pytest.fixture
def good_row(world: World) -> Row:
    return world.good[world.champion.features].iloc[:1].to_dict("records")[0]


@pytest.fixture
def baseline(world: World) -> float:
    response = world.predict(world.good.head(1))
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]


def url(world: World, case: BadCall) -> str:
    name = case.model or world.name
    if case.protocol == "v1":
        return f"{world.server.url}/v1/models/{name}:predict"
    return f"{world.server.url}/v2/models/{name}/infer"


def message(response: httpx.Response) -> str:
    """What the body says went wrong: KServe's {"error": ...} or FastAPI's 422 {"detail": [...]}."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        return "; ".join(
            f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg')}"
            for item in body["detail"]
        )
    return response.text


def counters(world: World) -> tuple[dict[str, object], tuple[int, int, int]]:
    """The served routing and the champion's (requests, errors, rows) from the admin stats."""
    stats = httpx.get(f"{world.server.url}/mlops/v1/stats", timeout=10).json()
    mine = stats["versions"][str(world.champion.version)]
    return stats["routing"], (mine["requests"], mine["errors"], mine["rows"])


@pytest.mark.parametrize("case", BAD_CALLS, ids=lambda case: case.id)
def test_bad_request_is_a_named_4xx_and_serving_goes_on(
    case: BadCall, world: World, good_row: Row, baseline: float, reliability
) -> None:
    routing, before = counters(world)
    response = httpx.post(
        url(world, case),
        content=case.body(good_row),
        headers={"content-type": case.content_type, **dict(case.headers)},
        timeout=60,
    )
    said = message(response)
    assert response.status_code == case.status, said
    assert case.names in said, said
    assert counters(world) == (routing, before)  # the refusal counted as nothing served

    good = world.predict(world.good.head(1))
    assert good.status_code == 200, good.text
    assert good.headers["x-model-version"] == str(world.champion.version)
    assert good.json()["predictions"][0] == pytest.approx(baseline, rel=1e-12)
    routing_after, after = counters(world)
    assert routing_after == routing
    assert after == (before[0] + 1, before[1], before[2] + 1)
    reliability(
        "bad input: prediction requests",
        f"{case.protocol.upper()}: {case.id}",
        done=f"{case.what} ({len(case.body(good_row)):,} bytes, {case.content_type})",
        expected=f"HTTP {case.status} naming {case.names!r}; no prediction counted; "
        "a good request still answered by the champion",
        observed=f"HTTP {response.status_code}: {said[:140]}. Stats of v{world.champion.version} "
        f"(requests, errors, rows) {before} unchanged by it; the good request after it: "
        f"200 from v{good.headers['x-model-version']}, same price; stats {after}",
    )


def test_the_corpus_left_no_traceback_and_nothing_moved(world: World, reliability) -> None:
    """After every bad request: a one-line log entry each, no traceback, nothing moved."""
    log = world.server.log_path.read_text(errors="replace")
    bad_lines = log.count("bad request:")
    assert "Traceback" not in log, world.server.log_tail()
    state = world.snapshot()
    assert state.routing[:3] == (world.champion.version, None, 0)
    assert (world.champion.version, world.champion.sha256) in state.versions
    reliability(
        "bad input: prediction requests",
        "server log and state after the whole corpus",
        done=f"read the model server's log after {len(BAD_CALLS)} malformed requests",
        expected="no traceback (a client's mistake is one log line); serving as before",
        observed=f"{bad_lines} 'bad request:' lines, 0 tracebacks; {state.describe()}",
    )
