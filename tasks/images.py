"""The project's image: the one variable that names it and the one check that it names one build.

Flow runs, the InferenceService's predictor and the Kubeflow pipeline's pods all run the image CI
built; each of them refuses a reference that could mean another build tomorrow (no tag, `latest`).
"""

from __future__ import annotations

import re

# Settings.image (tasks/settings.py); `deployments.setup --target kubernetes --image` sets it.
IMAGE_VARIABLE = "MLOPS_IMAGE"
_WHERE = f"{IMAGE_VARIABLE}, which `python -m deployments.setup --target kubernetes --image` sets"

# The grammar of distribution/reference, cut down to what an operator types.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}")


class ImageRefused(ValueError):
    """The image reference does not name one build of the project's image."""


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
            f"e.g. {name}:<commit> or {name}@sha256:<digest> ({_WHERE})"
        )
    if tag == "latest" and not at:
        raise ImageRefused(
            f"image {reference!r} is tagged latest, which moves with every push: "
            f"name the build, a commit tag or a digest ({_WHERE})"
        )
    return reference


def _looks_like_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"
