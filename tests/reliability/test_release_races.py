"""Racing writers on the real registry and the real model server: one coherent outcome each time.

- two alias moves racing by compare-and-swap: one wins, the other gets AliasConflict;
- a promote and a rollback of the same canary racing (the analysis against a person at the CLI):
  the canary is either promoted or rolled back, never both, and serving matches the aliases;
- two registrations racing: two distinct, complete versions.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sklearn.linear_model import LinearRegression

from infra.model_server import ModelServer, start_model_server
from tasks.data.synthetic import generate_house_prices
from tasks.decisions.routing import Routing, ServeOptions
from tasks.modelserver.model import LocalServingTarget
from tasks.registry.versions import AliasConflict, ModelRegistry
from tasks.release.acts import ReleaseError, promote, roll_back, roll_out
from tasks.s3 import connect
from tasks.training.model import train_model
from tests.support.keys import TEST_KEY
from tests.support.specs import spec_for
from tests.support.stack import settings_for

pytestmark = pytest.mark.integration

SPEC = spec_for()
ROUNDS = 4


def _race(*actions: Callable[[], object]) -> list[object]:
    """Run the actions at the same moment; each result is its return value or its exception."""
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], object]) -> object:
        barrier.wait()
        try:
            return action()
        except Exception as error:
            return error

    # Each thread runs in a copy of this context, so it talks to the test's Prefect server
    # (its settings live in a context variable) instead of starting an ephemeral one.
    contexts = [contextvars.copy_context() for _ in actions]
    with ThreadPoolExecutor(len(actions)) as pool:
        return list(pool.map(lambda c, a: c.run(run, a), contexts, actions))


@pytest.fixture
def registry(any_s3_server, model_name: str) -> ModelRegistry:
    store = connect(settings_for(any_s3_server))
    store.ensure_bucket()
    return ModelRegistry(store, model_name, TEST_KEY)


def test_racing_alias_moves_compare_and_swap(
    registry: ModelRegistry, any_s3_server, reliability
) -> None:
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    for _ in range(3):
        registry.register(model, SPEC)
    registry.set_alias("champion", 1, "start")
    outcomes = Counter()
    for _ in range(10):
        current = registry.alias("champion")
        targets = [v for v in (1, 2, 3) if v != current]
        results = _race(
            *(
                lambda v=v, c=current: registry.set_alias("champion", v, "race", expected=c)
                for v in targets
            )
        )
        conflicts = [r for r in results if isinstance(r, AliasConflict)]
        moves = [r for r in results if not isinstance(r, Exception)]
        assert (len(moves), len(conflicts)) == (1, 1), results
        assert registry.alias("champion") == moves[0].to_version
        outcomes[type(conflicts[0]).__name__] += 1
    history = [m for m in registry.history() if m.alias == "champion"]
    assert len(history) == 11  # the start plus exactly one move per race
    assert all(a.to_version == b.from_version for a, b in itertools.pairwise(history))
    reliability(
        "concurrency",
        f"two alias moves racing ({any_s3_server.kind})",
        done="10 rounds: two threads move `champion` at once, each expecting the version it read",
        expected="exactly one move per round, the other AliasConflict; history a single chain",
        observed=f"10/10 rounds one winner; {outcomes['AliasConflict']} AliasConflict; "
        f"history {len(history)} moves, each from_version = the previous to_version",
    )


def test_racing_registrations_get_distinct_versions(
    registry: ModelRegistry, any_s3_server, reliability
) -> None:
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    numbers = []
    for _ in range(10):
        results = _race(
            lambda: registry.register(model, SPEC), lambda: registry.register(model, SPEC)
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        numbers += [r.version for r in results]
    complete = [m.version for m in registry.versions()]
    assert len(set(numbers)) == 20 and sorted(numbers) == complete
    for version in complete:
        registry.load_bytes(version)
    reliability(
        "concurrency",
        f"two registrations racing ({any_s3_server.kind})",
        done="10 rounds of two registrations at once",
        expected="two distinct, complete, verifiable versions per round",
        observed=f"20 distinct numbers {min(numbers)}..{max(numbers)}, gaps "
        f"{max(numbers) - len(numbers)}; all 20 load with a matching sha256",
    )


@pytest.fixture(scope="module")
def served(s3_server, contract) -> Iterator[tuple[ModelRegistry, ModelServer]]:
    settings = settings_for(s3_server)
    store = connect(settings)
    store.ensure_bucket()
    registry = ModelRegistry(store, f"race-{uuid.uuid4().hex[:8]}", TEST_KEY)
    frame = generate_house_prices(400, seed=5)
    spec = SPEC.model_copy(update={"features": contract.feature_names, "target": "price"})
    for seed in range(ROUNDS + 1):
        registry.register(train_model(frame, contract, seed=seed).model, spec)
    registry.set_alias("champion", 1, "first")
    server = start_model_server(
        s3_server.env(),
        registry.name,
        options=ServeOptions(routing=Routing(stable_version=1), log_requests=False),
    )
    yield registry, server
    server.stop()


def test_promote_and_rollback_racing_leave_one_outcome(served, prefect_server, reliability) -> None:
    registry, server = served
    target = LocalServingTarget(server.url, registry.name)
    winners = Counter()
    for version in range(2, ROUNDS + 2):
        champion = registry.alias("champion")
        roll_out.fn(registry, target, registry.manifest(version), 20, "race round")
        promoted, rolled_back = _race(
            lambda v=version: promote.fn(registry, target, "race: promote", canary_version=v),
            lambda v=version: roll_back.fn(registry, target, "race: rollback", canary_version=v),
        )
        assert not isinstance(rolled_back, Exception), rolled_back
        state = target.state()
        ends = [m for m in registry.history() if m.alias == "canary" and m.from_version == version]
        assert len(ends) == 1, ends  # the canary ended once: promoted or rolled back
        assert registry.alias("canary") is None and state.canary_version is None
        if isinstance(promoted, ReleaseError):
            winners["rollback"] += 1
            assert registry.alias("champion") == champion == state.stable_version
            assert ends[0].reason.startswith("rolled back")
        else:
            assert not isinstance(promoted, Exception), promoted
            winners["promote"] += 1
            assert registry.alias("champion") == version == state.stable_version
            assert registry.alias("previous") == champion
            assert ends[0].reason.startswith("promoted")
    reliability(
        "concurrency",
        "promote and rollback of one canary racing",
        done=f"{ROUNDS} rounds: a canary goes live on the real model server, then "
        "promote (CLI) and roll_back (analysis) start at the same moment",
        expected="one outcome per round recorded once in the history; serving = aliases",
        observed=f"promote won {winners['promote']}, rollback won {winners['rollback']} of "
        f"{ROUNDS}; each round one canary-end move; stable v{target.state().stable_version} "
        f"= champion v{registry.alias('champion')}",
    )
