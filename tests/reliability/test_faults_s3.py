"""Fault injection on S3: the real server SIGKILLed mid-registration, mid alias move, mid log flush.

Each module starts its own S3 servers (not the session ones: they get killed). A fault lands at an
exact point by wrapping the ObjectStore's `put_bytes` so the real server process is SIGKILLed just
before or right after a chosen write; a lost answer is made by a real TCP proxy that lets the
request reach the server and cuts the connection when the answer starts. After each fault the
server is restarted on the same data and the test checks the registry is consistent (every alias
points at a complete, verifiable version) and that re-running the interrupted act converges.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sklearn.linear_model import LinearRegression

from infra.local_s3 import S3Server, start_s3_server
from tasks.data.contract import DataContract
from tasks.decisions.routing import Routing, ServeOptions
from tasks.modelserver.log_writer import ServingLogWriter
from tasks.modelserver.logs import logs_prefix
from tasks.registry.leases import LeaseBusy
from tasks.registry.versions import ModelRegistry, VersionNotFound
from tasks.s3 import ObjectStore, S3Unavailable, connect
from tasks.settings import get_settings
from tests.support.keys import TEST_KEY
from tests.support.live_traffic import ServedWorld, logged_once, serve_world
from tests.support.specs import spec_for
from tests.support.stack import settings_for

pytestmark = pytest.mark.integration

AREA = "fault injection"
SPEC = spec_for()


@pytest.fixture(scope="module")
def crashable(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    """An S3 server of the kind the test names (indirect parameter), owned by this module."""
    server = start_s3_server(request.param)
    try:
        yield server
    finally:
        server.stop()  # also when a failed test left it killed: then it only removes the data


@pytest.fixture
def s3(crashable: S3Server) -> Iterator[S3Server]:
    """The module's server, running when the test starts and again after it, whatever happened."""
    if crashable.process.poll() is not None:
        crashable.restart()
    yield crashable
    if crashable.process.poll() is not None:
        crashable.restart()


@pytest.fixture
def served_by(contract: DataContract) -> Iterator[Callable[..., ServedWorld]]:
    """Builds a model server (v1 stable, logs flushed every 0.5 s) on a given S3 server."""
    worlds: list[ServedWorld] = []

    def serve(s3: S3Server, endpoint: str | None = None) -> ServedWorld:
        options = ServeOptions(routing=Routing(stable_version=1), log_flush_seconds=0.5)
        worlds.append(serve_world(s3, contract, 1, options, endpoint))
        return worlds[-1]

    yield serve
    for world in worlds:
        world.server.stop()


def open_registry(server: S3Server) -> ModelRegistry:
    store = connect(settings_for(server))
    store.ensure_bucket()
    return ModelRegistry(store, f"m-{uuid.uuid4().hex[:10]}", TEST_KEY)


def small_model(slope: float) -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, slope, 2 * slope])


@contextmanager
def crash_on_put(
    store: ObjectStore, server: S3Server, matches: Callable[[str], bool], before: bool = False
) -> Iterator[list[str]]:
    """SIGKILL the real server right after the first matching put returns (or just before it)."""
    real_put, fired = store.put_bytes, []

    def put_bytes(key: str, data: bytes, *args: object, **kwargs: object) -> str:
        hit = not fired and matches(key)
        if hit and before:
            fired.append(key)
            server.kill()
        version_id = real_put(key, data, *args, **kwargs)
        if hit and not before:
            fired.append(key)
            server.kill()
        return version_id

    store.put_bytes = put_bytes  # type: ignore[method-assign]
    try:
        yield fired
    finally:
        del store.put_bytes


def consistent_aliases(registry: ModelRegistry) -> dict[str, int]:
    """Every alias, after loading what it points at (manifest read, sha256 checked)."""
    aliases = registry.aliases()
    for version in aliases.values():
        registry.load(version)  # raises VersionNotFound / IntegrityError if incomplete
    return aliases


# -- the registry ---------------------------------------------------------------------------
@pytest.mark.parametrize("crashable", ["seaweedfs", "minio"], indirect=True)
def test_s3_killed_mid_registration(s3: S3Server, reliability) -> None:
    registry = open_registry(s3)
    prefix = registry.prefix
    registry.register(small_model(1.0), SPEC)
    registry.set_alias("champion", 1, "first")
    history = len(registry.history())

    with crash_on_put(registry.store, s3, lambda key: key.endswith("/model.joblib")) as fired:
        started = time.monotonic()
        with pytest.raises(S3Unavailable):
            registry.register(small_model(2.0), SPEC)
        failed_after = time.monotonic() - started
    assert fired == [f"{prefix}v2/model.joblib"]
    s3.restart()

    assert [m.version for m in registry.versions()] == [1]
    assert registry.store.exists(f"{prefix}v2/model.joblib")  # the half version is on disk...
    assert not registry.store.exists(f"{prefix}v2/manifest.json")  # ...but never committed
    with pytest.raises(VersionNotFound):
        registry.load(2)
    with pytest.raises(VersionNotFound):
        registry.set_alias("champion", 2, "must be refused: v2 is incomplete")
    assert consistent_aliases(registry) == {"champion": 1}
    assert len(registry.history()) == history
    again = registry.register(small_model(2.0), SPEC)
    manifest, model = registry.load(again.version)
    assert again.version not in (1, 2) and manifest.sha256 == again.sha256
    assert model.predict([[3.0]])[0] == pytest.approx(6.0)
    assert [m.version for m in registry.versions()] == [1, again.version]
    reliability(
        AREA,
        f"{s3.kind} killed mid-registration",
        done=f"SIGKILLed {s3.kind} right after v2's model.joblib was written, before its "
        "manifest; restarted it on the same data; registered the same model again",
        expected="register raises S3Unavailable; v2 never listed nor loadable nor aliasable; "
        "champion untouched and verifiable; the re-run gives a complete new version",
        observed=f"S3Unavailable after {failed_after:.1f}s; versions after restart "
        f"{[m.version for m in registry.versions()][:1]} (v2 model file on disk, no manifest: "
        f"VersionNotFound on load and on set_alias); aliases {{'champion': 1}} load; history "
        f"{history} entries, unchanged; re-run gave v{again.version} (v2's number stays claimed "
        f"by the crashed attempt), sha256 verified",
    )


def rerun_past_stale_lease(act: Callable[[], object], limit_s: float = 120.0) -> float:
    """Run `act`, again while an alias lease left by the crash is still live; seconds it took."""
    started = time.monotonic()
    while True:
        try:
            act()
            return time.monotonic() - started
        except LeaseBusy:
            if time.monotonic() - started > limit_s:
                raise


@pytest.mark.parametrize("crashable", ["seaweedfs"], indirect=True)
def test_s3_killed_mid_alias_move(s3: S3Server, reliability) -> None:
    """Both sides of the pointer write: after it (history not written) and just before it."""
    registry = open_registry(s3)
    for slope in (1.0, 2.0):
        registry.register(small_model(slope), SPEC)
    registry.set_alias("champion", 1, "first")
    pointer = f"{registry.prefix}aliases/"

    champion, previous = f"{pointer}champion.json", f"{pointer}previous.json"
    with (
        crash_on_put(registry.store, s3, lambda key: key == champion) as after,
        pytest.raises(S3Unavailable),
    ):
        registry.set_alias("champion", 2, "promote v2")
    s3.restart()
    with (
        crash_on_put(registry.store, s3, lambda key: key == previous, before=True) as bef,
        pytest.raises(S3Unavailable),
    ):
        registry.set_alias("previous", 1, "keep v1 ready")
    s3.restart()
    assert (after, bef) == ([champion], [previous])

    # After the pointer write: the alias moved; its history object was never written.
    assert consistent_aliases(registry) == {"champion": 2}
    stored = len(history_objects(registry))
    moves = [(m.alias, m.from_version, m.to_version) for m in registry.history()]
    history_says = registry.version_at("champion", datetime.now(UTC))
    assert stored == 1 and "previous" not in registry.aliases()
    assert moves == [("champion", None, 1), ("champion", 1, 2)] and history_says == 2

    waited_champion = rerun_past_stale_lease(lambda: registry.set_alias("champion", 2, "re-run"))
    waited_previous = rerun_past_stale_lease(lambda: registry.set_alias("previous", 1, "re-run"))
    assert consistent_aliases(registry) == {"champion": 2, "previous": 1}
    after_rerun = [(m.alias, m.from_version, m.to_version) for m in registry.history()]
    extra_champion = [m for m in after_rerun[2:] if m[0] == "champion"]
    assert after_rerun[:2] == moves and all(m[2] == 2 for m in extra_champion)
    assert [m for m in after_rerun if m[0] == "previous"] == [("previous", None, 1)]
    assert len(history_objects(registry)) == len(after_rerun)  # every move now has its object
    assert registry.version_at("champion", datetime.now(UTC)) == 2
    reliability(
        AREA,
        "S3 killed mid alias move, after the pointer write",
        done=f"SIGKILLed {s3.kind} right after aliases/champion.json (v1->v2) was written, "
        "before its history object; restarted; re-ran the same set_alias",
        expected="S3Unavailable; the alias points at a complete, verifiable version; the "
        "history still shows the move; the re-run converges",
        observed=f"S3Unavailable; after restart champion -> v2 (loads); {stored} history "
        f"object on S3 but history() = {moves} (the pointer carries the cut move), "
        f"version_at(champion, now) = v{history_says}. Re-run waited {waited_champion:.0f}s "
        f"for the alias lease the crash left (a 20 s ttl, renewed only by a live holder), wrote the missing object and added "
        f"{extra_champion}; {len(after_rerun)} moves, {len(after_rerun)} objects",
    )
    reliability(
        AREA,
        "S3 killed mid alias move, just before the pointer write",
        done=f"SIGKILLed {s3.kind} just before aliases/previous.json was written (lease "
        "taken, version verified); restarted; re-ran the same set_alias",
        expected="S3Unavailable; nothing moved, nothing recorded; the re-run moves it once",
        observed=f"S3Unavailable; after restart no 'previous' alias and no history entry for "
        f"it; re-run waited {waited_previous:.0f}s for the stale lease, then recorded "
        f"('previous', None, 1) once; aliases {consistent_aliases(registry)} all load",
    )


def history_objects(registry: ModelRegistry) -> list[str]:
    return list(registry.store.list_keys(f"{registry.prefix}history/"))


# -- serving logs ----------------------------------------------------------------------------
class LoopbackProxy:
    """A loopback TCP proxy to an S3 server, for faults at exact points of real traffic.

    While `dropping` is set, each request reaches the server and the client's connection is cut
    the moment the answer starts: a write that landed, reported as failed (what a network fault
    or a crash after the commit produces). `on_request` sees every chunk a client sent, right
    after it was passed on: a test can crash the server with a request in flight.
    """

    def __init__(self, upstream: S3Server) -> None:
        host, port = upstream.endpoint.split(":")
        self.upstream = (host, int(port))
        self.dropping = threading.Event()
        self.answers_dropped = 0
        self.on_request: Callable[[bytes], None] | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:  # the server is down: so is this connection
                client.close()
                continue
            for source, sink, answers in ((client, server, False), (server, client, True)):
                threading.Thread(
                    target=self._pump, args=(source, sink, answers), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self.dropping.is_set():
                    self.answers_dropped += 1
                    break
                sink.sendall(data)
                if not answers and self.on_request is not None:
                    self.on_request(data)
        except OSError:
            pass
        for end in (source, sink):  # shutdown first: it wakes the other pump's recv
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self._listener.close()


def log_requests(writer: ServingLogWriter, tag: str, count: int, at: float | None = None) -> set:
    ids = {f"{tag}-{n}" for n in range(count)}
    for n, request_id in enumerate(sorted(ids)):
        writer.log(request_id, 1, [[float(n)]], [float(n)], at=at)
    return ids


@pytest.mark.parametrize("crashable", ["seaweedfs", "minio"], indirect=True)
def test_lost_answer_to_a_log_flush_writes_no_duplicate(s3: S3Server, reliability) -> None:
    direct = connect(settings_for(s3))
    direct.ensure_bucket()
    proxy = LoopbackProxy(s3)
    model, since = f"logs-{uuid.uuid4().hex[:8]}", datetime.now(UTC) - timedelta(seconds=1)
    proxied = connect(
        get_settings(
            s3_endpoint=proxy.url, s3_access_key=s3.access_key, s3_secret_key=s3.secret_key
        )
    )
    writer = ServingLogWriter(proxied, model, features=["x"], flush_seconds=3600).start()
    try:
        ids = log_requests(writer, "lost-answer", 50)
        proxy.dropping.set()
        first = writer.flush()
        landed = list(direct.list_keys(logs_prefix(model)))
        proxy.dropping.clear()
        ids |= log_requests(writer, "after", 10)
        second = writer.flush()
    finally:
        writer.close()
        proxy.close()
    assert first is False and "S3Unavailable" in (writer.last_error or "S3Unavailable")
    assert len(landed) == 1 and proxy.answers_dropped >= 1  # it landed though reported failed
    assert second is True and writer.last_error is None
    keys = list(direct.list_keys(logs_prefix(model)))
    seen, most = logged_once(direct, model, since)
    assert seen == ids and most == 1
    assert landed[0] in keys and len(keys) == 2  # the retry reused the key of the lost answer
    writes = len(direct.version_ids(landed[0]))
    reliability(
        AREA,
        f"{s3.kind}: answer to a serving-log put lost",
        done="a real TCP proxy let every put of a flush reach the server and cut the "
        f"connection as the answer began ({proxy.answers_dropped} answers cut, urllib3 "
        "retries included); then healed it and flushed again with 10 new requests",
        expected="the first flush reports failure, the retry overwrites the same object: "
        "every request id read back exactly once",
        observed=f"flush -> {first} though {len(landed)} object had landed; next flush -> "
        f"{second}; {len(keys)} objects, the first key reused ({writes} S3 versions of it); "
        f"{len(seen)}/{len(ids)} ids read back, each at most {most}x",
    )


@pytest.mark.parametrize("crashable", ["seaweedfs", "minio"], indirect=True)
def test_s3_killed_between_the_days_of_one_flush(s3: S3Server, reliability) -> None:
    store = connect(settings_for(s3))
    store.ensure_bucket()
    model = f"logs-{uuid.uuid4().hex[:8]}"
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    writer = ServingLogWriter(store, model, features=["x"], flush_seconds=3600).start()
    try:
        ids = log_requests(writer, "yesterday", 20, at=midnight.timestamp() - 1.0)
        ids |= log_requests(writer, "today", 20)
        prefix = logs_prefix(model)
        with crash_on_put(store, s3, lambda key: key.startswith(prefix)) as fired:
            first = writer.flush()
        s3.restart()
        second = writer.flush()
    finally:
        writer.close()
    day_before = (midnight - timedelta(days=1)).date().isoformat()
    assert first is False and len(fired) == 1 and f"date={day_before}/" in fired[0]
    assert second is True
    keys = list(store.list_keys(logs_prefix(model)))
    seen, most = logged_once(store, model, midnight - timedelta(minutes=1))
    assert seen == ids and most == 1 and len(keys) == 2
    assert writer.rows_written == 40 and writer.rows_dropped == 0
    reliability(
        AREA,
        f"{s3.kind} killed between the two days of one log flush",
        done="20 requests logged at 23:59:59 yesterday and 20 today, one flush = one object "
        f"per day; SIGKILLed {s3.kind} right after yesterday's object was written; restarted; "
        "flushed again",
        expected="the retry writes only what is missing: no request logged twice, none lost",
        observed=f"flush -> {first} (yesterday's object written, today's S3Unavailable); "
        f"after restart flush -> {second}; {len(keys)} objects; {len(seen)}/40 ids read back, "
        f"each at most {most}x; writer rows_written {writer.rows_written}, dropped "
        f"{writer.rows_dropped}",
    )


@contextmanager
def crash_on_log_put(proxy: LoopbackProxy, s3: S3Server, bucket: str) -> Iterator[threading.Event]:
    """SIGKILL `s3` the moment a serving-log PUT has passed through the proxy, unanswered."""
    fired, once = threading.Event(), threading.Lock()
    marker = f"PUT /{bucket}/serving-logs/".encode()

    def on_request(chunk: bytes) -> None:
        with once:
            if marker in chunk and not fired.is_set():
                s3.kill()
                fired.set()

    proxy.on_request = on_request
    try:
        yield fired
    finally:
        proxy.on_request = None


@pytest.mark.parametrize("crashable", ["seaweedfs"], indirect=True)
def test_s3_killed_during_a_flush_under_traffic(s3: S3Server, served_by, reliability) -> None:
    """The model server reaches S3 through the proxy, which kills S3 mid log PUT."""
    proxy = LoopbackProxy(s3)
    world = served_by(s3, proxy.url)
    try:
        with world.traffic() as sent:
            time.sleep(1.5)
            with crash_on_log_put(proxy, s3, world.store.bucket) as fired:
                assert fired.wait(10), "no serving-log flush within 10 s"
            killed_at = time.monotonic()
            time.sleep(2.0)
            stats = httpx.get(f"{world.server.url}/mlops/v1/stats", timeout=10).json()["logs"]
            s3.restart()
            restarted_at = time.monotonic()
            time.sleep(1.0)
        final = world.flush()
        after = httpx.get(f"{world.server.url}/mlops/v1/stats", timeout=10).json()["logs"]
    finally:
        proxy.close()
    answered = {r.request_id for r in sent if r.ok}
    down = [r for r in sent if killed_at <= r.started < restarted_at]
    seen, most = logged_once(world.store, world.model, world.since)
    assert down and all(r.ok for r in down), "predictions must be answered while S3 is down"
    assert stats["last_error"] and "S3Unavailable" in stats["last_error"]
    assert final["flushed"] is True
    assert answered - seen == set() and most == 1 and seen <= {r.request_id for r in sent}
    assert after["rows_dropped"] == 0
    keys = list(world.store.list_keys(logs_prefix(world.model)))
    rewritten = sum(len(world.store.version_ids(key)) > 1 for key in keys)
    reliability(
        AREA,
        "S3 killed during a serving-log flush under traffic",
        done=f"2 clients with unique request ids against the model server (flush every "
        f"{world.flush_s}s), which reached S3 through a loopback proxy; the proxy SIGKILLed "
        f"{s3.kind} the moment a serving-log PUT had passed through, unanswered; clients kept "
        f"sending for {restarted_at - killed_at:.1f}s; restarted S3; flushed; read the logs back",
        expected="predictions still answered while S3 is down; after the restart every "
        "answered request logged exactly once",
        observed=f"{len(down)} requests answered while S3 was down, "
        f"{sum(not r.ok for r in down)} failed; writer error meanwhile: "
        f"{stats['last_error'][:40]}...; final flush {final['flushed']}; {len(answered)} "
        f"answered, {len(answered - seen)} missing from the logs, each id at most {most}x; "
        f"rows dropped {after['rows_dropped']}; {len(keys)} log objects, {rewritten} of them "
        "written twice under one key (the cut put had landed, its retry overwrote it)",
    )
