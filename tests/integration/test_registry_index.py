"""The registry's indexes on real S3 servers (SeaweedFS and MinIO): the alias history index and
the versions index stay in step with moves and registrations, readers stay right when an index
is stale, lost or damaged (and repair it), concurrent moves are never lost, and the answers are
the ones the index-less reads gave, at a fixed number of GETs."""

from __future__ import annotations

import gzip
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.linear_model import LinearRegression

from tasks.registry.history_head import Archive, HistoryHead
from tasks.registry.moves import AliasMove, entry_name
from tasks.registry.versions import IntegrityError, ModelRegistry, VersionNotFound
from tasks.s3 import ObjectStore, S3AccessDenied, S3Unavailable, connect
from tests.support.keys import TEST_KEY
from tests.support.specs import spec_for
from tests.support.stack import settings_for

pytestmark = pytest.mark.integration

SPEC = spec_for()
VERSION_DIR = re.compile(r"/v(\d+)/$")


class CountingStore(ObjectStore):
    """The real store, noting every GET and LIST it is asked for."""

    def __init__(self, store: ObjectStore) -> None:
        super().__init__(store.client, store.bucket, store.endpoint)
        self.calls: list[tuple[str, str]] = []

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        self.calls.append(("get", key))
        return super().get_bytes(key, version_id)

    def list_keys(self, prefix: str, recursive: bool = True, start_after: str | None = None):
        self.calls.append(("list", prefix))
        return super().list_keys(prefix, recursive, start_after)

    def gets(self, part: str = "") -> list[str]:
        return [key for op, key in self.calls if op == "get" and part in key]

    def lists(self) -> list[str]:
        return [key for op, key in self.calls if op == "list"]


@pytest.fixture
def registry(any_s3_server, model_name: str) -> ModelRegistry:
    store = connect(settings_for(any_s3_server))
    store.ensure_bucket()
    registry = ModelRegistry(CountingStore(store), model_name, TEST_KEY)
    registry.book.index.seal_at = 4  # archive every 4 moves: a few moves use every part
    return registry


def counting(registry: ModelRegistry) -> CountingStore:
    store = registry.store
    assert isinstance(store, CountingStore)
    store.calls.clear()
    return store


def small_model(slope: float) -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, slope, 2 * slope])


@contextmanager
def refused_puts(store: ObjectStore, matches: Callable[[str], bool], error: Exception) -> Iterator:
    """Every PUT of a matching key fails, as when the writer dies or may not write there."""
    real_put = store.put_bytes

    def put_bytes(key: str, *args: object, **kwargs: object) -> str:
        if matches(key):
            raise error
        return real_put(key, *args, **kwargs)

    store.put_bytes = put_bytes  # type: ignore[method-assign]
    try:
        yield
    finally:
        del store.put_bytes


def head_of(registry: ModelRegistry) -> HistoryHead:
    index = registry.book.index
    return HistoryHead.model_validate_json(registry.store.get_bytes(index.head_key))


def indexed_names(registry: ModelRegistry) -> list[str]:
    """Every history object name the index holds (archive and tail)."""
    head, index = head_of(registry), registry.book.index
    archived = [] if head.archive is None else Archive.model_validate_json(
        gzip.decompress(registry.store.get_bytes(index.archive_key))).entries  # fmt: skip
    return sorted({entry.name for entry in [*archived, *head.tail]})


def stored_names(registry: ModelRegistry) -> list[str]:
    keys = registry.store.list_keys(f"{registry.prefix}history/")
    return sorted(key.rsplit("/", 1)[-1] for key in keys)


def unindexed_move(registry: ModelRegistry, alias: str, version: int | None,
                   at: datetime | None = None) -> AliasMove:  # fmt: skip
    """What set_alias writes (pointer, then history object) by a writer that never reaches the
    index: the code before it, or one that died right after the history PUT."""
    pointer = registry.book._pointer(alias)
    move = AliasMove(alias=alias, from_version=None if pointer is None else pointer["version"],
                     to_version=version, at=at or datetime.now(UTC), by="index-less writer",
                     reason="written without the index")  # fmt: skip
    key = f"{registry.prefix}history/{entry_name(move)}"
    pointer = {"alias": alias, "version": version, "at": move.at.isoformat(), "by": move.by,
               "move": move.model_dump(mode="json"), "history_key": key}  # fmt: skip
    registry.store.put_bytes(f"{registry.prefix}aliases/{alias}.json", json.dumps(pointer).encode())
    registry.store.put_bytes(key, move.model_dump_json().encode())
    return move


def old_version_at(moves: list[AliasMove], alias: str, when: datetime) -> int | None:
    """version_at as it was: the last move of the alias, in history order, at or before `when`."""
    version = None
    for move in moves:
        if move.alias == alias and move.at <= when:
            version = move.to_version
    return version


def old_versions(registry: ModelRegistry) -> list:
    """versions() as it was: list the version folders, read and verify every manifest."""
    keys = registry.store.list_keys(registry.prefix, recursive=False)
    numbers = sorted(int(match.group(1)) for key in keys if (match := VERSION_DIR.search(key)))
    found = []
    for number in numbers:
        try:
            found.append(registry.manifest(number))
        except (VersionNotFound, IntegrityError):
            continue
    return found


# -- the alias history index --------------------------------------------------------------------
def test_moves_keep_the_index_in_step_and_reads_cost_a_few_gets(registry: ModelRegistry) -> None:
    for slope in (1.0, 2.0):
        registry.register(small_model(slope), SPEC)
    aliases, middle = ("champion", "canary", "previous"), None
    for i in range(10):
        registry.set_alias(aliases[i % 3], 1 + i % 2, f"move {i}")
        if i == 3:
            middle = datetime.now(UTC)
            time.sleep(0.01)
    head = head_of(registry)
    assert indexed_names(registry) == stored_names(registry)  # every move, once
    assert head.watermark == stored_names(registry)[-1] and len(head.tail) < 4
    assert head.archive is not None and head.archive.count == 8  # sealed twice
    for alias in aliases:  # each pointer's move is marked as folded in
        pointer = registry.book._pointer(alias)
        assert head.aliases[alias] == pointer["history_key"].rsplit("/", 1)[-1]

    store = counting(registry)
    history = registry.history()
    index = registry.book.index
    assert sorted(store.gets()) == sorted(
        [index.head_key, index.archive_key]
        + [f"{registry.prefix}aliases/{alias}.json" for alias in aliases]
    )
    assert len(store.lists()) == 1  # the history after the watermark: nothing
    assert len(history) == 10 and history == registry.book.history_by_scan()

    store = counting(registry)
    assert registry.version_at("champion", datetime.now(UTC)) == history[9].to_version
    assert sorted(store.gets()) == [f"{registry.prefix}aliases/champion.json", index.head_key]
    store = counting(registry)
    assert registry.version_at("champion", middle) == old_version_at(history, "champion", middle)
    assert index.archive_key in store.gets()  # a moment inside the archive reads it, once
    assert store.gets(f"{registry.prefix}history/") == []


def test_a_reader_is_right_when_the_index_is_stale_and_repairs_it(registry: ModelRegistry) -> None:
    for slope in (1.0, 2.0):
        registry.register(small_model(slope), SPEC)
    registry.set_alias("champion", 1, "first")
    index = registry.book.index

    # The index PUT is lost after a move (as if the writer died right after its history PUT).
    with refused_puts(registry.store, lambda key: "/index/" in key, S3Unavailable("cut")):
        registry.set_alias("champion", 2, "index write lost")
    assert head_of(registry).watermark < stored_names(registry)[-1]
    store = counting(registry)
    history = registry.history()
    assert len(store.gets(f"{registry.prefix}history/")) == 1  # only the object after the watermark
    assert [(m.from_version, m.to_version) for m in history] == [(None, 1), (1, 2)]
    assert history == registry.book.history_by_scan()
    assert indexed_names(registry) == stored_names(registry)  # the reader folded it in
    store = counting(registry)
    assert registry.history() == history and store.gets(f"{registry.prefix}history/") == []

    # Writers that never touch the index (the code before it): two moves, so the first one is
    # in no pointer any more; then one whose clock is an hour behind (below the watermark).
    unindexed_move(registry, "champion", 1)
    unindexed_move(registry, "champion", 2)
    assert registry.history() == registry.book.history_by_scan()
    assert registry.version_at("champion", datetime.now(UTC)) == 2
    behind = unindexed_move(registry, "champion", 1, at=datetime.now(UTC) - timedelta(hours=1))
    history = registry.history()
    assert behind in history and history == registry.book.history_by_scan()
    now = datetime.now(UTC)  # history order is time order: the late move sorts an hour back
    assert registry.version_at("champion", now) == old_version_at(history, "champion", now) == 2
    hour_ago = behind.at + timedelta(seconds=1)
    assert registry.version_at("champion", hour_ago) == 1  # found through its pointer alone
    registry.set_alias("champion", 2, "the next move folds the pointer's move in")
    assert indexed_names(registry) == stored_names(registry)

    # The index damaged or lost: the archive alone, then the head too.
    registry.store.put_bytes(index.archive_key, b"not gzip")
    assert registry.history() == registry.book.history_by_scan()
    assert indexed_names(registry) == stored_names(registry)  # rewritten by that reader
    registry.store.delete(index.archive_key)
    assert registry.history() == registry.book.history_by_scan()
    registry.store.delete(index.head_key)
    store = counting(registry)
    assert registry.history() == registry.book.history_by_scan()
    assert indexed_names(registry) == stored_names(registry)  # rebuilt by that reader
    store = counting(registry)
    registry.history()
    assert store.gets(f"{registry.prefix}history/") == []
    registry.store.put_bytes(index.head_key, b"{not json")  # damaged: never trusted
    assert registry.history() == registry.book.history_by_scan()


def test_a_move_cut_before_its_history_object_is_read_from_its_pointer(
    registry: ModelRegistry,
) -> None:
    """The pointer is written, its history object is not (nor the index): for an alias the
    index knows, and for a new alias's very first move (named in the head before its pointer)."""
    for slope in (1.0, 2.0):
        registry.register(small_model(slope), SPEC)
    registry.set_alias("champion", 1, "first")
    objects = f"{registry.prefix}history/"
    for alias, version in (("champion", 2), ("canary", 2)):
        with (
            refused_puts(registry.store, lambda key: key.startswith(objects), S3Unavailable("cut")),
            pytest.raises(S3Unavailable),
        ):
            registry.set_alias(alias, version, "cut after the pointer")
    moves = [(m.alias, m.from_version, m.to_version) for m in registry.history()]
    assert moves == [("champion", None, 1), ("champion", 1, 2), ("canary", None, 2)]
    assert registry.history() == registry.book.history_by_scan()
    assert len(stored_names(registry)) == 1
    now = datetime.now(UTC)
    assert (registry.version_at("champion", now), registry.version_at("canary", now)) == (2, 2)
    registry.set_alias("previous", 1, "another alias moves meanwhile")
    registry.set_alias("champion", 1, "the next champion move writes and folds the cut one")
    registry.set_alias("canary", None, "and so does the next canary move")
    assert indexed_names(registry) == stored_names(registry)
    assert len(registry.history()) == 6 == len(stored_names(registry))
    assert registry.history() == registry.book.history_by_scan()


def test_a_reader_that_may_not_write_still_answers(registry: ModelRegistry) -> None:
    registry.register(small_model(1.0), SPEC)
    registry.set_alias("champion", 1, "first")
    unindexed_move(registry, "champion", None)
    registry.store.delete(f"{registry.prefix}index/versions/000000.json")
    denied = S3AccessDenied("serving may not write models/")
    with refused_puts(registry.store, lambda key: True, denied):
        assert registry.history() == registry.book.history_by_scan()
        assert registry.version_at("champion", datetime.now(UTC)) is None
        assert [m.version for m in registry.versions()] == [1]


def test_concurrent_moves_are_never_lost(registry: ModelRegistry) -> None:
    """Two writers (threads: each lease claim is its own S3 object, as for two processes) move
    two aliases at once while a third thread reads, and repairs, the history."""
    registry.book.index.seal_at = 3  # sealing happens under contention too
    for slope in (1.0, 2.0):
        registry.register(small_model(slope), SPEC)
    errors: list[BaseException] = []

    def mover(alias: str, start: int) -> None:
        try:
            for i in range(6):
                registry.set_alias(alias, 1 + (start + i) % 2, f"{alias} {i}")
        except BaseException as error:
            errors.append(error)

    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            registry.history()

    threads = [
        threading.Thread(target=mover, args=(a, s)) for a, s in (("champion", 0), ("canary", 1))
    ]
    watcher = threading.Thread(target=reader)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    assert errors == []
    history = registry.history()
    assert len(history) == 12 and history == registry.book.history_by_scan()
    assert indexed_names(registry) == stored_names(registry)
    for alias in ("champion", "canary"):
        chain = [m for m in history if m.alias == alias]
        assert all(a.to_version == b.from_version for a, b in itertools.pairwise(chain))


def test_history_and_version_at_answer_as_before(registry: ModelRegistry) -> None:
    registry.book.index.seal_at = 3
    for slope in (1.0, 2.0, 3.0):
        registry.register(small_model(slope), SPEC)
    steps: list[Callable[[], object]] = [
        lambda: registry.set_alias("champion", 1, "first", expected=None),
        lambda: registry.set_alias("canary", 2, "canary v2", expected=None),
        lambda: registry.set_alias("previous", 1, "keep v1"),
        lambda: registry.set_alias("champion", 2, "promote v2", expected=1),
        lambda: registry.set_alias("canary", None, "canary ends"),
        lambda: registry.set_alias("champion", 2, "a re-run: nothing moves"),
        lambda: registry.set_alias("canary", 3, "canary v3"),
        lambda: registry.set_alias("canary", None, "rolled back"),
        lambda: registry.set_alias("champion", 1, "roll back to v1"),
        lambda: registry.set_alias("previous", 2, "keep v2"),
    ]
    moments = [datetime.now(UTC) - timedelta(seconds=1)]
    for step in steps:
        step()
        moments.append(datetime.now(UTC))
        time.sleep(0.005)
    old = registry.book.history_by_scan()
    assert registry.history() == old and len(old) == 9
    for alias in ("champion", "canary", "previous", "nothing-yet"):
        for when in moments:
            assert registry.version_at(alias, when) == old_version_at(old, alias, when)


# -- the versions index -------------------------------------------------------------------------
def test_versions_come_from_the_index_not_from_every_manifest(registry: ModelRegistry) -> None:
    made = [registry.register(small_model(float(i)), SPEC) for i in range(12)]
    block = f"{registry.prefix}index/versions/000000.json"
    store = counting(registry)
    listed = registry.versions()
    assert [m.version for m in listed] == list(range(1, 13)) and listed == made
    assert store.gets() == [block]  # no manifest read
    assert listed == old_versions(registry)

    registry.store.delete(block)  # lost: rebuilt by reading each manifest once
    store = counting(registry)
    assert registry.versions() == made and len(store.gets("/manifest.json")) == 12
    store = counting(registry)
    assert registry.versions() == made and store.gets() == [block]


def test_versions_never_list_what_does_not_exist_or_verify(registry: ModelRegistry) -> None:
    made = [registry.register(small_model(float(i)), SPEC) for i in range(4)]
    prefix, store = registry.prefix, registry.store
    # A registration that died before its manifest: a claim and a model file, nothing else.
    store.put_bytes(f"{prefix}claims/v5/dead", b"x")
    store.put_bytes(f"{prefix}v5/model.joblib", b"half")
    # A forged index entry for a version with no manifest at all.
    block_key = f"{prefix}index/versions/000000.json"
    block = json.loads(store.get_bytes(block_key))
    block["versions"]["9"] = block["versions"]["1"]
    store.put_bytes(block_key, json.dumps(block).encode())
    # v2's manifest deleted; v3's replaced by v1's (a manifest that describes another version).
    store.delete(f"{prefix}v2/manifest.json")
    store.put_bytes(f"{prefix}v3/manifest.json", store.get_bytes(f"{prefix}v1/manifest.json"))
    counted = counting(registry)
    assert [m.version for m in registry.versions()] == [1, 4]
    assert counted.gets("/manifest.json") == [f"{prefix}v3/manifest.json"]  # only the changed one
    assert [m.version for m in old_versions(registry)] == [1, 4]
    with pytest.raises(VersionNotFound):
        registry.load(9)

    # A registration whose index update was lost is found by the next reader, and repaired.
    with refused_puts(store, lambda key: "/index/" in key, S3Unavailable("cut")):
        sixth = registry.register(small_model(6.0), SPEC)
    counted = counting(registry)
    assert [m.version for m in registry.versions()] == [1, 4, sixth.version]
    assert counted.gets("/manifest.json") == [f"{prefix}v{sixth.version}/manifest.json"]
    counted = counting(registry)
    assert registry.versions()[-1] == sixth and counted.gets("/manifest.json") == []
    assert made[0] == registry.versions()[0]


def test_signed_versions_are_checked_from_the_index(any_s3_server, model_name: str) -> None:
    store = CountingStore(connect(settings_for(any_s3_server)))
    store.ensure_bucket()
    keyed = ModelRegistry(store, model_name, signing_key=b"k" * 32)
    for slope in (1.0, 2.0):
        keyed.register(small_model(slope), SPEC)
    sig = f"{keyed.prefix}v2/manifest.sig"
    good = store.get_bytes(sig)
    store.put_bytes(sig, good.replace(b'"mac":"', b'"mac":"0'))
    assert [m.version for m in keyed.versions()] == [1]  # v2's signature no longer verifies
    unchecked = ModelRegistry(store, model_name, allow_unsigned=True)  # no key: nothing checked
    assert [m.version for m in unchecked.versions()] == [1, 2]
    store.put_bytes(sig, good)
    store.calls.clear()
    assert [m.version for m in keyed.versions()] == [1, 2]
    assert store.gets("/manifest.json") == []  # the signature was read again, not the manifest
