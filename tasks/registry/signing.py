"""Signed manifests: an HMAC-SHA256 over a manifest's exact bytes, with a key from a secret.

A writer who can put objects in the bucket but does not hold the key can upload a model file
and a manifest with a matching sha256, but not the signature: a registry (or model server)
that holds the key refuses such a version before anything points at it or serves it.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import BaseModel, ConfigDict, ValidationError

from tasks.settings import Settings

ALGORITHM = "hmac-sha256"
MIN_KEY_BYTES = 32


class SignatureError(RuntimeError):
    """A manifest's signature is missing, malformed or does not verify with our key."""


class SigningKeyMissing(RuntimeError):
    """Signing is asked for but no usable key was found; the message says where to put one."""


class Signature(BaseModel):
    """What `manifest.sig` holds: the algorithm, which key signed, and the MAC."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    algorithm: str
    key_id: str
    mac: str


def key_id(key: bytes) -> str:
    """A public fingerprint of the key, so an error can say "signed with another key"."""
    return hashlib.sha256(b"mlops-manifest-key:" + key).hexdigest()[:12]


def sign(key: bytes, manifest_bytes: bytes) -> bytes:
    mac = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    return Signature(algorithm=ALGORITHM, key_id=key_id(key), mac=mac).model_dump_json().encode()


def verify(key: bytes, manifest_bytes: bytes, signature_bytes: bytes | None, what: str) -> None:
    """Raise SignatureError unless `signature_bytes` is our key's MAC of `manifest_bytes`."""
    if signature_bytes is None:
        raise SignatureError(f"{what}: the manifest is not signed; refusing it")
    try:
        signature = Signature.model_validate(json.loads(signature_bytes))
    except (ValueError, ValidationError) as error:
        raise SignatureError(f"{what}: the signature file is malformed: {error}") from error
    if signature.algorithm != ALGORITHM:
        raise SignatureError(f"{what}: unsupported signature algorithm {signature.algorithm!r}")
    if signature.key_id != key_id(key):
        raise SignatureError(
            f"{what}: signed with key {signature.key_id}, not with ours ({key_id(key)}); refusing it"
        )
    expected = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.mac):
        raise SignatureError(f"{what}: the manifest does not match its signature; refusing it")


def signing_key(settings: Settings) -> bytes | None:
    """The manifest key from MLOPS_MANIFEST_KEY or a Prefect Secret block; None if neither."""
    if settings.manifest_key is not None:
        raw = settings.manifest_key.get_secret_value()
        source = "MLOPS_MANIFEST_KEY"
    elif settings.manifest_key_block:
        from prefect.blocks.system import Secret

        raw = str(Secret.load(settings.manifest_key_block).get())
        source = f"Secret block {settings.manifest_key_block!r}"
    else:
        return None
    key = raw.encode()
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyMissing(
            f"the manifest key from {source} has {len(key)} bytes; use at least {MIN_KEY_BYTES} "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return key
