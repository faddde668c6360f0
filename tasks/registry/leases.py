"""Short leases on S3, so that two writers never interleave an alias move or a release act.

S3 servers without conditional PUT (MinIO before 2024-11, SeaweedFS) still list strongly
consistently, which is enough for a sole-claimant lock: a contender writes a claim object whose
key carries its expiry, lists the live claims, and holds the lease only if its claim is the only
live one. Contenders that see each other withdraw and retry after a random pause.

The ttl is short and the holder renews its claim in the background (a new claim first, then
the old one deleted, so there is never a moment without one): a long act keeps its lease, and
a holder that crashes (or loses S3) blocks the others for one ttl at most.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
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


def _new_claim(store: ObjectStore, prefix: str, holder: str, ttl_s: float) -> str:
    expires = int((time.time() + ttl_s) * 1000)
    claim = f"{prefix}{expires:013d}-{secrets.token_hex(6)}"
    store.put_bytes(claim, holder.encode())
    return claim


@contextmanager
def lease(
    store: ObjectStore, prefix: str, holder: str, ttl_s: float = 20.0, wait_s: float = 60.0
) -> Iterator[str]:
    """Hold the lease under `prefix` (a folder key ending in '/') for the block."""
    claim = _acquire(store, prefix, holder, ttl_s, wait_s)
    held = _Renewal(store, prefix, holder, ttl_s, claim)
    held.start()
    try:
        yield prefix
    finally:
        held.stop()


def _acquire(store: ObjectStore, prefix: str, holder: str, ttl_s: float, wait_s: float) -> str:
    deadline = time.monotonic() + wait_s
    while True:
        claim = _new_claim(store, prefix, holder, ttl_s)
        now = int(time.time() * 1000)
        keys = list(store.list_keys(prefix))
        live = [key for key in keys if _expiry_ms(key) > now]
        if live == [claim]:
            return claim
        store.delete(claim)
        _remove_expired(store, [key for key in keys if key not in live])
        if time.monotonic() > deadline:
            others = ", ".join(key.rsplit("/", 1)[-1] for key in live if key != claim)
            raise LeaseBusy(f"{prefix} is held by another writer ({others}) for over {wait_s:.0f}s")
        time.sleep(random.uniform(0.01, 0.15))


class _Renewal(threading.Thread):
    """Keeps a held claim alive every ttl/3 until stopped, then deletes it."""

    def __init__(self, store: ObjectStore, prefix: str, holder: str, ttl_s: float, claim: str):
        super().__init__(name=f"lease {prefix}", daemon=True)
        self.store, self.prefix, self.holder, self.ttl_s = store, prefix, holder, ttl_s
        self.claim = claim
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.ttl_s / 3):
            try:
                fresh = _new_claim(self.store, self.prefix, self.holder, self.ttl_s)
                self.store.delete(self.claim)
                self.claim = fresh
            except S3Unavailable as error:
                LOG.warning("could not renew %s: %s", self.claim, error)

    def stop(self) -> None:
        self._stopped.set()
        self.join()
        try:
            self.store.delete(self.claim)
        except S3Unavailable as error:  # it expires by itself; do not hide the block's error
            LOG.warning(
                "could not release %s (expires in %.0fs): %s", self.claim, self.ttl_s, error
            )


def _remove_expired(store: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        try:
            store.delete(key)
        except S3Unavailable:
            return
