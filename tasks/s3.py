"""The S3 connection: credentials, bounded retries, and errors that say what went wrong."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.error import S3Error
from minio.versioningconfig import VersioningConfig

from tasks.settings import Settings


class S3Unavailable(RuntimeError):
    """The S3 server did not answer within the configured retries."""


class ObjectNotFound(KeyError):
    """The key (or version) does not exist in the bucket."""

    def __str__(self) -> str:
        return str(self.args[0])


class S3AccessDenied(PermissionError):
    """The server refused this identity the operation: its policy does not allow it."""


class BucketNotFound(RuntimeError):
    """The configured bucket does not exist on the S3 server."""


class VersioningNotEnabled(RuntimeError):
    """The bucket does not keep versions, and this identity may not switch them on."""


class CredentialsMissing(RuntimeError):
    """No S3 credentials were found in the environment or a Prefect Secret block."""


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


def resolve_credentials(settings: Settings) -> S3Credentials:
    """Credentials from MLOPS_S3_ACCESS_KEY/SECRET_KEY, or from the named Prefect Secret block."""
    if settings.s3_access_key and settings.s3_secret_key:
        return S3Credentials(
            settings.s3_access_key.get_secret_value(), settings.s3_secret_key.get_secret_value()
        )
    if settings.s3_secret_block:
        from prefect.blocks.system import Secret

        value = Secret.load(settings.s3_secret_block).get()
        if not isinstance(value, dict) or not {"access_key", "secret_key"} <= value.keys():
            raise CredentialsMissing(
                f"Secret block {settings.s3_secret_block!r} must hold access_key and secret_key"
            )
        return S3Credentials(str(value["access_key"]), str(value["secret_key"]))
    raise CredentialsMissing(
        "no S3 credentials: set MLOPS_S3_ACCESS_KEY and MLOPS_S3_SECRET_KEY "
        "or MLOPS_S3_SECRET_BLOCK (a Prefect Secret block)"
    )


class ObjectStore:
    """One bucket on one S3 server; every call either succeeds or raises a named error."""

    def __init__(self, client: Minio, bucket: str, endpoint: str) -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint = endpoint

    def _call(self, what: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except S3Error as error:
            if error.code in {"NoSuchKey", "NoSuchVersion", "NoSuchObject"}:
                raise ObjectNotFound(f"s3://{self.bucket}: {what}: no such object") from error
            if error.code == "AccessDenied":
                raise S3AccessDenied(f"s3://{self.bucket}: {what}: access denied") from error
            if error.code == "NoSuchBucket":
                raise self._no_bucket(what) from error
            raise
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise S3Unavailable(
                f"S3 server {self.endpoint} unreachable while trying to {what}: {error}"
            ) from error

    def _no_bucket(self, what: str) -> BucketNotFound:
        return BucketNotFound(
            f"bucket {self.bucket!r} does not exist on {self.endpoint} (while trying to {what}): "
            "create it first (every flow and `python -m flows.loop` do) or check MLOPS_BUCKET"
        )

    def ensure_bucket(self, versioning: bool = True) -> None:
        """Create the bucket if needed and, with `versioning`, make sure it keeps every version.

        Versioning is read first and switched on only when it is off: the flows' identity may
        read it but never change it (the right to enable it is also the right to suspend it),
        so on a bucket the operator prepared no flow ever asks, and on one where it is off a
        flow stops here rather than write what could be lost.
        """
        if not self._call("check the bucket", self.client.bucket_exists, self.bucket):
            try:
                self._call("create the bucket", self.client.make_bucket, self.bucket)
            except S3Error as error:
                if error.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
        if not versioning:
            return
        current = self._call("read versioning", self.client.get_bucket_versioning, self.bucket)
        if current.status == ENABLED:
            return
        try:
            self._call(
                "enable versioning",
                self.client.set_bucket_versioning,
                self.bucket,
                VersioningConfig(ENABLED),
            )
        except S3AccessDenied as error:
            raise VersioningNotEnabled(
                f"bucket {self.bucket!r} on {self.endpoint} does not keep versions (versioning "
                f"is {current.status}) and this identity may not enable it, by design: the "
                f"operator must enable versioning, once, with the admin keys: "
                f"`python -m infra.minio_setup --bucket {self.bucket} …` (infra/README.md, step 4; "
                f"or `mc version enable <alias>/{self.bucket}`)"
            ) from error

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Write one object; returns its S3 version id (or '' where versioning is off)."""
        result = self._call(
            f"write {key}",
            self.client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
        )
        return result.version_id or ""

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        response = self._call(
            f"read {key}", self.client.get_object, self.bucket, key, version_id=version_id
        )
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        try:
            self._call(f"stat {key}", self.client.stat_object, self.bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list_keys(
        self, prefix: str, recursive: bool = True, start_after: str | None = None
    ) -> Iterator[str]:
        """Keys under `prefix` in key order; only those after `start_after` when given."""
        objects = self._call(
            f"list {prefix}",
            self.client.list_objects,
            self.bucket,
            prefix=prefix,
            recursive=recursive,
            start_after=start_after,
        )
        try:
            for item in objects:
                yield item.object_name
        except S3Error as error:  # the listing runs lazily, outside _call
            if error.code == "AccessDenied":
                raise S3AccessDenied(f"s3://{self.bucket}: list {prefix}: access denied") from error
            if error.code == "NoSuchBucket":
                raise self._no_bucket(f"list {prefix}") from error
            raise
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise S3Unavailable(
                f"S3 server {self.endpoint} unreachable while listing {prefix}: {error}"
            ) from error

    def version_ids(self, key: str) -> list[str]:
        """The S3 version ids of one key, oldest first, in the server's own write order."""
        items = self._call(
            f"list versions of {key}",
            self.client.list_objects,
            self.bucket,
            prefix=key,
            include_version=True,
        )
        newest_first = [
            item.version_id
            for item in items
            if item.object_name == key and not item.is_delete_marker
        ]
        return newest_first[::-1]

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", self.client.remove_object, self.bucket, key)


def connect(settings: Settings) -> ObjectStore:
    """An ObjectStore for the configured endpoint and bucket, with bounded retries."""
    if not settings.s3_endpoint:
        raise S3Unavailable(
            "no S3 endpoint configured: set MLOPS_S3_ENDPOINT, or run through the local stack "
            "(python -m flows.loop) which starts one"
        )
    url = urlparse(
        settings.s3_endpoint if "://" in settings.s3_endpoint else f"http://{settings.s3_endpoint}"
    )
    if not url.hostname:
        raise S3Unavailable(f"S3 endpoint {settings.s3_endpoint!r} has no host")
    credentials = resolve_credentials(settings)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=settings.s3_timeout_s, read=settings.s3_timeout_s),
        maxsize=16,
        retries=urllib3.Retry(
            total=settings.s3_retries,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
            allowed_methods=None,
        ),
    )
    client = Minio(
        url.netloc,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        secure=url.scheme == "https",
        region=settings.s3_region,
        http_client=http,
    )
    return ObjectStore(client, settings.bucket, url.netloc)
