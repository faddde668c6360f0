"""Where the loop's flow runs execute — the local process pool or the Kubernetes pool — and the
image reference a Kubernetes set-up accepts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_POOL = "mlops-local"
KUBERNETES_POOL = "mlops-kubernetes"
IMAGE_WORKDIR = "/opt/prefect"  # where infra/Dockerfile puts the code
# Settings.serving_image (tasks/settings.py): the InferenceService's predictor runs the image the
# flows run in, so the one build is set for both.
SERVING_IMAGE_ENV = "MLOPS_SERVING_IMAGE"

# The grammar of distribution/reference, cut down to what an operator types.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}")


class ImageRefused(ValueError):
    """The image reference does not name one build of the flow image."""


@dataclass(frozen=True)
class Target:
    """One place to run the flows: its pool, its image (Kubernetes only) and where the code is."""

    name: str
    pool: str
    working_directory: str
    image: str | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)


def local_target() -> Target:
    """The local process pool, running the flows from this checkout."""
    return Target(name="local", pool=LOCAL_POOL, working_directory=str(PROJECT_ROOT))


def kubernetes_target(image: str) -> Target:
    """The Kubernetes pool, every flow run in `image` (refused unless it names one build), which
    is also the image the flows give the InferenceService's predictor."""
    image = checked_image(image)
    return Target(
        name="kubernetes",
        pool=KUBERNETES_POOL,
        working_directory=IMAGE_WORKDIR,
        image=image,
        job_variables={"image": image, "env": {SERVING_IMAGE_ENV: image}},
    )


def checked_image(reference: str) -> str:
    """`reference` if it names one build: `repo:tag` (not `latest`), `repo@digest` or both."""
    if not reference or reference != reference.strip() or any(c.isspace() for c in reference):
        raise ImageRefused(f"image {reference!r}: empty or contains whitespace")
    name, at, digest = reference.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ImageRefused(f"image {reference!r}: {digest!r} is not a digest (sha256:<hex>)")
    parts = name.split("/")
    tag = None
    if ":" in parts[-1]:
        parts[-1], tag = parts[-1].rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise ImageRefused(f"image {reference!r}: {tag!r} is not a valid tag")
    host = parts.pop(0) if len(parts) > 1 and _looks_like_host(parts[0]) else None
    if (host is not None and not _HOST.fullmatch(host)) or not all(
        _PATH_COMPONENT.fullmatch(part) for part in parts
    ):
        raise ImageRefused(f"image {reference!r}: not a repository name (lower case, a/b/c)")
    if tag is None and not at:
        raise ImageRefused(
            f"image {reference!r} has no tag nor digest: name the build, "
            f"e.g. {name}:<commit> or {name}@sha256:<digest>"
        )
    if tag == "latest" and not at:
        raise ImageRefused(
            f"image {reference!r} is tagged latest, which moves with every push: "
            "name the build (a commit tag or a digest)"
        )
    return reference


def _looks_like_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"
