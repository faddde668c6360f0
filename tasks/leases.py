"""Short leases on S3, so that two writers never interleave an alias move or a release act.

S3 servers without conditional PUT (MinIO before 2024-11, SeaweedFS) still list strongly
consistently, which is enough for a sole-claimant lock: a contender writes a claim object whose
key carries its expiry, lists the live claims, and holds the lease only if its claim is the only
live one. Contenders that see each other withdraw and retry after a random pause. A holder that
crashes blocks others until its claim expires (the ttl), never forever.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tasks.s3 import ObjectStore, S3Unavailable

LOG = logging.getLogger(__name__)


class LeaseBusy(RuntimeError):
    """Someone else held the lease for longer than we were willing to wait."""


def _expiry_ms(key: str) -> int:
    try:
        return int(key.rsplit("/", 1)[-1].split("-", 1)[0])
    except ValueError:
        return 0  # not a claim we wrote: treat as expired


@contextmanager
def lease(
    store: ObjectStore, prefix: str, holder: str, ttl_s: float = 60.0, wait_s: float = 30.0
) -> Iterator[str]:
    """Hold the lease under `prefix` (a folder key ending in '/') for the block."""
    deadline = time.monotonic() + wait_s
    while True:
        expires = int((time.time() + ttl_s) * 1000)
        claim = f"{prefix}{expires:013d}-{secrets.token_hex(6)}"
        store.put_bytes(claim, holder.encode())
        now = int(time.time() * 1000)
        keys = list(store.list_keys(prefix))
        live = [key for key in keys if _expiry_ms(key) > now]
        if live == [claim]:
            break
        store.delete(claim)
        _remove_expired(store, [key for key in keys if key not in live])
        if time.monotonic() > deadline:
            others = ", ".join(key.rsplit("/", 1)[-1] for key in live if key != claim)
            raise LeaseBusy(f"{prefix} is held by another writer ({others}) for over {wait_s:.0f}s")
        time.sleep(random.uniform(0.01, 0.15))
    try:
        yield claim
    finally:
        try:
            store.delete(claim)
        except S3Unavailable as error:  # it expires by itself; do not hide the block's error
            LOG.warning("could not release %s (expires in %.0fs): %s", claim, ttl_s, error)


def _remove_expired(store: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        try:
            store.delete(key)
        except S3Unavailable:
            return
