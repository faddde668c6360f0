"""The model registry on S3: immutable versions, alias pointers, an append-only alias history.

Layout under the bucket (see DESIGN.md):
    models/<name>/v<N>/model.joblib      what KServe's sklearn runtime loads
    models/<name>/v<N>/manifest.sig      HMAC of manifest.json (always, unless MLOPS_ALLOW_UNSIGNED)
    models/<name>/v<N>/manifest.json     written last: a version exists once its manifest does
    models/<name>/claims/v<N>/<token>    version-number claims: a claim alone under <N> owns it
    models/<name>/aliases/<alias>.json   one small pointer object per alias (one PUT moves it)
    models/<name>/history/<time>-<token>.json   one object per alias move, never rewritten
    models/<name>/leases/<what>/<expiry>-<token>   short leases serialising alias moves and releases
    models/<name>/index/history/head.json, archive.json.gz   the alias history's index, a cache
        of the history objects and pointers (history_index.py)
    models/<name>/index/versions/<block>.json   the manifests as stored, 100 versions a block, a
        cache checked against a listing of the manifests on every read (version_index.py)
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import random
import re
import secrets
import time
from contextlib import AbstractContextManager, suppress
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks.registry.aliases import ANY, AliasBook, AliasConflict, AliasMove
from tasks.registry.errors import RegistryError, actor
from tasks.registry.leases import lease
from tasks.registry.signing import (
    SignatureError,
    SigningKeyMissing,
    sign,
    signing_key,
    verify,
)
from tasks.registry.version_index import VersionIndex
from tasks.s3 import ObjectNotFound, ObjectStore, connect
from tasks.settings import Settings

CLAIM_KEY = re.compile(r"/claims/v(\d+)/[^/]+$")
LOG = logging.getLogger(__name__)
__all__ = [  # the aliases' and the base's names are part of this module's interface
    "ANY", "AliasConflict", "AliasMove", "DataSummary", "IntegrityError", "Manifest",
    "ModelRegistry", "ModelSpec", "RegistryError", "VersionNotFound", "actor",
]  # fmt: skip


class IntegrityError(RegistryError):
    """A model file does not match the sha256 in its manifest: it is never loaded."""


class VersionNotFound(RegistryError):
    """No complete version (model file and manifest) under that number or alias."""


class DataSummary(BaseModel):
    model_config = ConfigDict(frozen=True)
    digest: str
    rows: int
    source: str = ""


class ModelSpec(BaseModel):
    """What a caller hands to `register`: all of the manifest but what the registry decides."""

    model_config = ConfigDict(frozen=True)

    @field_validator("metrics")
    @classmethod
    def _finite(cls, metrics: dict[str, float]) -> dict[str, float]:
        # JSON has no NaN/inf: such a manifest could never be read back, so refuse it up front.
        bad = sorted(name for name, value in metrics.items() if not math.isfinite(value))
        if bad:
            raise ValueError(f"metrics must be finite numbers; not: {bad}")
        return metrics

    features: list[str]
    target: str
    metrics: dict[str, float]
    slice_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    data: DataSummary
    contract: dict[str, str]
    git_revision: str
    params: dict[str, object]
    library_versions: dict[str, str]
    parent: int | None = None
    reason: str = ""

    # A classifier records its task and classes in `params` (older manifests and every regressor
    # say nothing there, so a regression manifest is what it always was).
    @property
    def task(self) -> str:
        """The model's task: "classification" when its params say so, else "regression"."""
        return str(self.params.get("task", "regression"))

    @property
    def classes(self) -> list[str] | None:
        """A classifier's class labels in `predict_proba` column order; None for a regressor."""
        classes = self.params.get("classes")
        return [str(label) for label in classes] if isinstance(classes, list) else None


class Manifest(ModelSpec):
    """Everything needed to trust, reproduce and serve one model version: the caller's spec
    plus what the registry decides (number, checksum, location, time, author)."""

    name: str
    version: int
    sha256: str
    size_bytes: int
    storage_uri: str
    created_at: datetime
    created_by: str


class ModelRegistry:
    """Versions and aliases of one model name in one bucket."""

    def __init__(
        self,
        store: ObjectStore,
        name: str,
        signing_key: bytes | None = None,
        *,
        allow_unsigned: bool = False,
    ) -> None:
        self.store = store
        self.name = name
        self.prefix = f"models/{name}/"
        # With a key: sign what we write, refuse what does not verify. Without one, refuse to
        # register or read versions at all, unless unsigned operation is asked for by name.
        self.signing_key = signing_key
        self.allow_unsigned = allow_unsigned
        self.book = AliasBook(store, self.prefix, name, self.lock, self.load_bytes)
        self.versions_index = VersionIndex(store, self.prefix)

    # -- aliases: the book does the work; these are the registry's public face ----------------
    def alias(self, alias: str) -> int | None:
        """The version an alias points at now, or None if it points nowhere."""
        return self.book.alias(alias)

    def aliases(self) -> dict[str, int]:
        return self.book.aliases()

    def set_alias(
        self, alias: str, version: int | None, reason: str, expected: object = ANY
    ) -> AliasMove:
        """Point an alias at a complete, verified version, or clear it (see AliasBook)."""
        return self.book.set_alias(alias, version, reason, expected)  # type: ignore[arg-type]

    def history(self) -> list[AliasMove]:
        return self.book.history()

    def version_at(self, alias: str, when: datetime) -> int | None:
        return self.book.version_at(alias, when)

    def lock(self, what: str, wait_s: float = 60.0) -> AbstractContextManager[str]:
        """A lease on `what` for this model (e.g. "release"), held for the `with` block;
        LeaseBusy if another holder keeps it longer than `wait_s`."""
        return lease(self.store, f"{self.prefix}leases/{what}/", actor(), wait_s=wait_s)

    # -- versions -------------------------------------------------------------------------
    def register(self, model: object, spec: ModelSpec, max_attempts: int = 30) -> Manifest:
        """Store a new version; racing callers get distinct numbers and nothing is overwritten."""
        import joblib

        self.require_key("register a version of")
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        payload = buffer.getvalue()
        version = self._claim_version(max_attempts)
        directory = f"{self.prefix}v{version}/"
        manifest = Manifest(
            name=self.name,
            version=version,
            sha256=hashlib.sha256(payload).hexdigest(),
            size_bytes=len(payload),
            storage_uri=f"s3://{self.store.bucket}/{directory}",
            created_at=datetime.now(UTC),
            created_by=actor(),
            **spec.model_dump(),
        )
        document = manifest.model_dump_json(indent=2).encode()
        self.store.put_bytes(directory + "model.joblib", payload)
        signature = None if self.signing_key is None else sign(self.signing_key, document)
        if signature is not None:
            self.store.put_bytes(directory + "manifest.sig", signature)
        # The manifest is the commit point: a version without one is invisible everywhere.
        self.store.put_bytes(directory + "manifest.json", document, "application/json")
        self.versions_index.record(version, document, signature)
        return manifest

    def _claim_version(self, max_attempts: int) -> int:
        """Claim the next version number: a claim wins only if it is alone under its number.

        On a strongly consistent store (MinIO, SeaweedFS, S3) two writers can never both see
        themselves alone, so no number is ever given twice. Contenders that saw each other
        withdraw and retry the same number unless someone now holds it, which keeps gaps rare
        (a number can still be skipped when a third writer moved past it meanwhile).
        """
        version = max(self._claimed_numbers(), default=0) + 1
        for _ in range(max_attempts):
            claim = f"{self.prefix}claims/v{version}/{secrets.token_hex(8)}"
            self.store.put_bytes(claim, actor().encode())
            if list(self.store.list_keys(f"{self.prefix}claims/v{version}/")) == [claim]:
                return version
            self.store.delete(claim)
            time.sleep(random.uniform(0.005, 0.1))
            if any(self.store.list_keys(f"{self.prefix}claims/v{version}/")):
                version = max(self._claimed_numbers(), default=0) + 1
        raise RegistryError(f"could not claim a version of {self.name} in {max_attempts} attempts")

    def _claimed_numbers(self) -> list[int]:
        # Live claim objects only: a withdrawn claim leaves a delete marker, which some servers
        # still list as a "directory"; it must not count as taken.
        keys = self.store.list_keys(f"{self.prefix}claims/", recursive=True)
        return [int(match.group(1)) for key in keys if (match := CLAIM_KEY.search(key))]

    def manifest(self, version: int) -> Manifest:
        key = f"{self.prefix}v{version}/manifest.json"
        try:
            raw = self.store.get_bytes(key)
        except ObjectNotFound as error:
            raise VersionNotFound(f"{self.name} v{version} does not exist (no manifest)") from error
        signature = None
        if self.signing_key is not None:
            with suppress(ObjectNotFound):  # unsigned: refused by _checked
                signature = self.store.get_bytes(f"{self.prefix}v{version}/manifest.sig")
        return self._checked(version, raw, signature)

    def _checked(self, version: int, raw: bytes, signature: bytes | None) -> Manifest:
        """The manifest in `raw`, once it verifies: signed with our key (when we hold one),
        valid, and describing this model and version."""
        self.require_key("read the versions of")
        if self.signing_key is not None:
            try:
                verify(self.signing_key, raw, signature, f"{self.name} v{version}")
            except SignatureError as error:
                raise IntegrityError(str(error)) from error
        try:
            manifest = Manifest.model_validate_json(raw)
        except ValidationError as error:
            raise IntegrityError(
                f"{self.name} v{version}: manifest is not valid: {error}"
            ) from error
        if (manifest.name, manifest.version) != (self.name, version):
            raise IntegrityError(
                f"{self.name} v{version}: the manifest under this path describes "
                f"{manifest.name} v{manifest.version}; refusing it"
            )
        return manifest

    def versions(self) -> list[Manifest]:
        """Every complete version, oldest first, each verified as `manifest()` does; from the
        versions index, checked against one listing of what exists (see version_index.py)."""
        found = []
        for number, stored in self.versions_index.read().items():
            try:
                found.append(self._checked(number, stored.manifest, stored.signature))
            except IntegrityError as error:
                LOG.warning("skipping a version that does not verify: %s", error)
        return found

    def require_key(self, action: str) -> None:
        if self.signing_key is None and not self.allow_unsigned:
            raise SigningKeyMissing(
                f"refusing to {action} {self.name}: no manifest signing key. Set "
                "MLOPS_MANIFEST_KEY (at least 32 bytes) or MLOPS_MANIFEST_KEY_BLOCK (a Prefect "
                "Secret block); MLOPS_ALLOW_UNSIGNED=true turns signatures off, insecurely"
            )

    def load_bytes(self, version: int) -> tuple[Manifest, bytes]:
        """The verified model file of a version; raises IntegrityError on a sha256 mismatch."""
        manifest = self.manifest(version)
        if self.signing_key is None:
            LOG.warning(
                "loading %s v%d WITHOUT signature verification (MLOPS_ALLOW_UNSIGNED=true): "
                "anyone who can write the bucket can choose what gets unpickled",
                self.name, version,
            )  # fmt: skip
        try:
            payload = self.store.get_bytes(f"{self.prefix}v{version}/model.joblib")
        except ObjectNotFound as error:
            raise VersionNotFound(f"{self.name} v{version} has a manifest but no model") from error
        actual = hashlib.sha256(payload).hexdigest()
        if actual != manifest.sha256:
            raise IntegrityError(
                f"{self.name} v{version}: model.joblib sha256 {actual[:12]}… does not match "
                f"the manifest's {manifest.sha256[:12]}…; refusing to load it"
            )
        return manifest, payload

    def load(self, version: int) -> tuple[Manifest, object]:
        """Load a version's model, only after its sha256 matched the manifest."""
        import joblib  # here, not at the top: flows that only move aliases never unpickle

        manifest, payload = self.load_bytes(version)
        return manifest, joblib.load(io.BytesIO(payload))


def model_names(store: ObjectStore) -> list[str]:
    """Every model the registry holds (a folder under models/), by name."""
    return sorted(
        key.removeprefix("models/").rstrip("/")
        for key in store.list_keys("models/", recursive=False)
        if key.endswith("/")
    )


def open_registry(
    settings: Settings, store: ObjectStore | None = None, *, create_bucket: bool = False
) -> ModelRegistry:
    """The one way to open the configured model's registry: its store, name and signing key.

    With `create_bucket`, the bucket is created (versioning on) if missing — for writers.
    """
    store = store or connect(settings)
    if create_bucket:
        store.ensure_bucket(versioning=True)
    return ModelRegistry(
        store, settings.model_name, signing_key(settings), allow_unsigned=settings.allow_unsigned
    )
