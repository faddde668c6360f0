"""Where the loop's flow runs execute: the local process pool or the Kubernetes pool, which runs
the project's image (checked by tasks/images.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.images import IMAGE_VARIABLE, checked_image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_POOL = "mlops-local"
KUBERNETES_POOL = "mlops-kubernetes"
IMAGE_WORKDIR = "/opt/prefect"  # where infra/Dockerfile puts the code


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
    the flow runs also see as Settings.image: the image the InferenceService's predictor and the
    Kubeflow pipeline's pods run."""
    image = checked_image(image)
    return Target(
        name="kubernetes",
        pool=KUBERNETES_POOL,
        working_directory=IMAGE_WORKDIR,
        image=image,
        job_variables={"image": image, "env": {IMAGE_VARIABLE: image}},
    )
