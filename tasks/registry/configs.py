"""A model's configuration in the registry, beside its versions: one signed object per model.

    models/<name>/config.json   {"yaml": the configuration file's text, "signature": HMAC of it,
                                 "digest", "published_at", "published_by"}

One PUT replaces it whole (bucket versioning keeps every earlier one), so a reader never sees a
new text with an old signature. Every process — worker, pod, Kubeflow step, model server — reads
the same one; a configuration that does not verify with the registry's key is refused, as a
manifest is. Without one, the settings' contract file and policy defaults apply, as before.

Policies: a section of the configuration replaces the policy's defaults; environment variables
and per-run arguments still win over it (`get_settings(config=...)`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.data.contract import ContractError, DataContract, load_contract
from tasks.data.model_config import ModelConfig, load_model_config
from tasks.registry.errors import actor
from tasks.registry.signing import SignatureError, sign, verify
from tasks.s3 import BucketNotFound, ObjectNotFound

if TYPE_CHECKING:
    from tasks.registry.versions import ModelRegistry
    from tasks.settings import Settings


class ConfigRefused(RuntimeError):
    """The stored configuration is unsigned, tampered, or not a valid configuration."""


def config_key(registry: ModelRegistry) -> str:
    return f"{registry.prefix}config.json"


def publish_config(registry: ModelRegistry, path: str | Path) -> str:
    """Store the configuration file at `path` (validated first) as `registry`'s; its digest."""
    load_model_config(path)  # refuses an invalid file with every problem named, before writing
    registry.require_key("publish the configuration of")
    text = Path(path).read_text(encoding="utf-8")
    payload = text.encode()
    signature = None if registry.signing_key is None else sign(registry.signing_key, payload)
    digest = hashlib.sha256(payload).hexdigest()
    envelope = {
        "yaml": text,
        "signature": None if signature is None else signature.decode(),
        "digest": digest,
        "published_at": datetime.now(UTC).isoformat(),
        "published_by": actor(),
    }
    registry.store.put_bytes(
        config_key(registry), json.dumps(envelope).encode(), "application/json"
    )
    return digest


def read_config(registry: ModelRegistry) -> ModelConfig | None:
    """The model's stored configuration once it verifies; None if it has none."""
    try:
        raw = registry.store.get_bytes(config_key(registry))
    except (ObjectNotFound, BucketNotFound):
        return None
    what = f"the configuration of {registry.name}"
    registry.require_key("read the configuration of")
    try:
        envelope = json.loads(raw)
        text = envelope["yaml"]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigRefused(f"{what} ({config_key(registry)}) is malformed: {error}") from error
    if registry.signing_key is not None:
        signature = envelope.get("signature")
        try:
            verify(registry.signing_key, text.encode(), signature and signature.encode(), what)
        except SignatureError as error:
            raise ConfigRefused(str(error)) from error
    return _parse(text, what)


def _parse(text: str, what: str) -> ModelConfig:
    import tempfile

    with tempfile.TemporaryDirectory() as work:  # one loader for files and stored text
        path = Path(work) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_model_config(path)
        except ContractError as error:
            raise ConfigRefused(f"{what} is not valid: {error}") from error


def configured(settings: Settings, registry: ModelRegistry) -> tuple[Settings, DataContract]:
    """The run's settings with the model's stored policies under them, and its contract: the
    stored configuration's, else the settings' contract file."""
    config = read_config(registry)
    if config is None:
        return settings, load_contract(settings.contract_path)
    sections: dict[str, dict[str, Any]] = {
        name: section
        for name in ("training", "gate", "canary", "drift")
        if (section := getattr(config, name))
    }
    return settings.reconfigured(sections), config.contract
