"""The versions index: what `versions()` needs without one GET per version.

    models/<name>/index/versions/<block>.json   versions 100*block .. 100*block+99: each one's
        manifest.json and manifest.sig exactly as stored, and the ETags S3 listed them with

`register` adds its version once the manifest (the commit point) is written. A reader lists the
version folders once (one LIST, in pages of 1,000 keys; no GET per key): that says which versions
exist (a manifest.json) and whether a manifest or signature changed since it was indexed (its
ETag). The reader GETs only what the index lacks or holds another copy of, drops versions whose
manifest is gone, and writes back the blocks it corrected. So the index never lists a version
without a manifest, nor a manifest changed behind it, and needs no lease: an update lost to a
racing writer costs a later reader one GET. The registry verifies each manifest (signature,
name, number) from these bytes exactly as from S3, and loading a version still reads and
verifies its manifest and model file from S3.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass

import urllib3
from minio.error import S3Error

from tasks.s3 import BucketNotFound, ObjectNotFound, ObjectStore, S3AccessDenied, S3Unavailable

LOG = logging.getLogger(__name__)
BLOCK = 100  # versions per index object: a registration rewrites at most ~100 manifests
VERSION_FILE = re.compile(r"v(\d+)/(manifest\.json|manifest\.sig)")


@dataclass(frozen=True)
class Stored:
    """One version's manifest and signature as stored, and the ETags they were listed with."""

    manifest: bytes
    manifest_etag: str
    signature: bytes | None
    signature_etag: str  # "" when there is no signature

    @property
    def etags(self) -> tuple[str, str]:
        return self.manifest_etag, self.signature_etag


@dataclass(frozen=True)
class Listed:
    """The ETags a listing shows for one version's manifest and signature ("" if none)."""

    manifest_etag: str
    signature_etag: str

    @property
    def etags(self) -> tuple[str, str]:
        return self.manifest_etag, self.signature_etag


class VersionIndex:
    """Reads and maintains the versions index of one model."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix

    def record(self, version: int, manifest: bytes, signature: bytes | None) -> None:
        """Index a version whose manifest was just written. Its ETags are taken to be the MD5s
        single-part uploads get; where the server differs, the first reader GETs it once."""
        key = self._key(version // BLOCK)
        try:
            block = self._load(key)
            block[version] = Stored(manifest, _md5(manifest), signature, _md5(signature))
            self._put(key, block)
        except (S3Unavailable, S3AccessDenied) as error:  # committed anyway; readers catch up
            LOG.warning("v%d is not in the versions index yet: %s", version, error)

    def read(self) -> dict[int, Stored]:
        """Every version whose manifest.json exists, in number order, as stored now."""
        listed = self._list()
        blocks = {n: self._load(self._key(n)) for n in sorted({v // BLOCK for v in listed})}
        changed: set[int] = set()
        for number, block in blocks.items():
            for version in [v for v in block if v not in listed]:  # its manifest is gone
                del block[version]
                changed.add(number)
        for version, etags in listed.items():
            block = blocks[version // BLOCK]
            held = block.get(version)
            if held and held.etags == etags.etags:
                continue
            changed.add(version // BLOCK)
            fetched = self._fetch(version, etags, held)
            if fetched is None:
                block.pop(version, None)
            else:
                block[version] = fetched
        self._repair({number: blocks[number] for number in changed})
        stored = {v: block[v] for block in blocks.values() for v in block}
        return dict(sorted(stored.items()))

    def _list(self) -> dict[int, Listed]:
        manifests: dict[int, str] = {}
        signatures: dict[int, str] = {}
        for key, etag in list_with_etags(self.store, f"{self.prefix}v"):
            if match := VERSION_FILE.fullmatch(key.removeprefix(self.prefix)):
                found = manifests if match.group(2) == "manifest.json" else signatures
                found[int(match.group(1))] = etag
        return {v: Listed(etag, signatures.get(v, "")) for v, etag in manifests.items()}

    def _fetch(self, version: int, etags: Listed, held: Stored | None) -> Stored | None:
        """What changed of a version since it was indexed (or all of it), read from S3."""
        folder = f"{self.prefix}v{version}/"
        if held is not None and held.manifest_etag == etags.manifest_etag:
            manifest = held.manifest  # only the signature changed
        else:
            try:
                manifest = self.store.get_bytes(folder + "manifest.json")
            except ObjectNotFound:  # deleted since the listing
                return None
        signature = None
        if etags.signature_etag:
            with suppress(ObjectNotFound):  # deleted since the listing: unsigned now
                signature = self.store.get_bytes(folder + "manifest.sig")
        return Stored(manifest, etags.manifest_etag, signature,
                      etags.signature_etag if signature is not None else "")  # fmt: skip

    def _repair(self, blocks: dict[int, dict[int, Stored]]) -> None:
        for number, block in blocks.items():
            try:
                self._put(self._key(number), block)
            except (S3Unavailable, S3AccessDenied) as error:  # a reader that may not write
                LOG.info("left versions index block %d to the next writer: %s", number, error)

    def _key(self, number: int) -> str:
        return f"{self.prefix}index/versions/{number:06d}.json"

    def _load(self, key: str) -> dict[int, Stored]:
        try:
            document = json.loads(self.store.get_bytes(key))
            return {int(v): _stored(entry) for v, entry in document["versions"].items()}
        except ObjectNotFound:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # rebuilt, not trusted
            LOG.warning("ignoring %s: %s", key, error)
            return {}

    def _put(self, key: str, block: dict[int, Stored]) -> None:
        versions = {str(v): _document(stored) for v, stored in sorted(block.items())}
        data = json.dumps({"format": 1, "versions": versions}).encode()
        self.store.put_bytes(key, data, "application/json")


def _md5(data: bytes | None) -> str:
    return "" if data is None else hashlib.md5(data, usedforsecurity=False).hexdigest()


# Bytes kept exact through JSON: a damaged manifest need not be UTF-8, and its bytes are what
# the signature and the validation are checked against.
def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _document(stored: Stored) -> dict[str, str | None]:
    signature = None if stored.signature is None else _text(stored.signature)
    return {"manifest": _text(stored.manifest), "manifest_etag": stored.manifest_etag,
            "signature": signature, "signature_etag": stored.signature_etag}  # fmt: skip


def _stored(entry: dict) -> Stored:
    signature = entry["signature"]
    return Stored(entry["manifest"].encode("utf-8", "surrogateescape"), entry["manifest_etag"],
                  None if signature is None else signature.encode("utf-8", "surrogateescape"),
                  entry["signature_etag"])  # fmt: skip


def list_with_etags(store: ObjectStore, prefix: str) -> Iterator[tuple[str, str]]:
    """(key, ETag) under `prefix`: ObjectStore.list_keys gives names only, and an ETag is what
    shows that an object changed without reading it."""
    where = f"s3://{store.bucket}: list {prefix}"
    try:
        for item in store.client.list_objects(store.bucket, prefix=prefix, recursive=True):
            yield item.object_name, (item.etag or "").strip('"')
    except S3Error as error:
        if error.code == "AccessDenied":
            raise S3AccessDenied(f"{where}: access denied") from error
        if error.code == "NoSuchBucket":
            raise BucketNotFound(f"bucket {store.bucket!r} does not exist ({where})") from error
        raise
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise S3Unavailable(f"S3 server {store.endpoint} unreachable ({where}): {error}") from error
