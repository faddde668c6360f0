"""The local stack a benchmark measures on, in a temporary directory, stopped on the way out.

bench/loop.py (the deployments and a worker: the loop as it runs) and bench/rollback.py (no
worker: its flows run in the benchmark's process) both start it here, so both measure the stack
users get from infra/local_stack.py: SeaweedFS with the training and serving identities, a
signing key, a Prefect server and the local KServe model server, all on loopback.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.local_stack import LocalStack
    from tasks.decisions.routing import ServeOptions


@contextmanager
def bench_stack(
    name: str, env: dict[str, str], worker: bool, serve_options: ServeOptions | None = None
) -> Iterator[LocalStack]:
    """The stack with `env` set first, so the model server and the worker inherit it."""
    from infra.local_stack import environment, local_stack

    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as work,
        environment(env),
        local_stack(runtime_dir=Path(work), worker=worker, serve_options=serve_options) as stack,
    ):
        yield stack


def quiet_prefect() -> None:
    """Keep flow and task run logs off the console (importing prefect sets them to INFO)."""
    import logging

    import prefect.main  # noqa: F401  (configures logging once; the level must come after)

    logging.getLogger("prefect").setLevel(logging.WARNING)
