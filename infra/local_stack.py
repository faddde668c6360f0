"""The local stack: a real S3 server and a real Prefect server on loopback, started together.

Anything already configured (MLOPS_S3_ENDPOINT, PREFECT_API_URL) is used as it is; what this
module starts, it also stops, on normal exit, on an exception and on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from infra.local_s3 import S3Server, start_s3_server
from infra.prefect_server import PrefectServer, start_prefect_server

RUNTIME_DIR = Path(__file__).resolve().parents[1] / ".runtime"


@dataclass
class LocalStack:
    s3_url: str
    prefect_ui: str
    s3: S3Server | None = None
    prefect: PrefectServer | None = None
    started: list[str] = field(default_factory=list)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def local_stack(
    runtime_dir: Path = RUNTIME_DIR, s3_kind: str = "seaweedfs"
) -> Iterator[LocalStack]:
    """Start what is missing, point this process at it, and stop it all on the way out."""
    with ExitStack() as stack:
        s3 = prefect = None
        if not os.environ.get("MLOPS_S3_ENDPOINT"):
            s3 = start_s3_server(s3_kind)  # type: ignore[arg-type]
            stack.callback(s3.stop)
            stack.enter_context(_environment(s3.env()))
        if not os.environ.get("PREFECT_API_URL"):
            shutil.rmtree(runtime_dir / "prefect", ignore_errors=True)  # a fresh history per run
            prefect = start_prefect_server(runtime_dir / "prefect")
            stack.callback(prefect.stop)
            stack.enter_context(_environment(prefect.env()))
        yield LocalStack(
            s3_url=os.environ["MLOPS_S3_ENDPOINT"],
            prefect_ui=os.environ["PREFECT_API_URL"].removesuffix("/api"),
            s3=s3,
            prefect=prefect,
            started=[name for name, item in (("s3", s3), ("prefect", prefect)) if item],
        )
