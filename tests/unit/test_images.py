"""The one check of the project's image: which references name one build, and why the others do
not. The set-up, the settings (MLOPS_IMAGE), the InferenceService and the Kubeflow pods use it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.images import IMAGE_VARIABLE, ImageRefused, checked_image
from tasks.settings import get_settings, unknown_variables
from tests.support.imports import external_imports, import_graph

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/example/selfheal:abc123",
        "selfheal:v1.2.3",
        "localhost:5000/team/selfheal:0f3c9e1",
        "localhost:5000/mlops:1.2",
        f"ghcr.io/example/selfheal@{DIGEST}",
        "ghcr.io/example/mlops@sha256:" + "a" * 64,
        f"ghcr.io/example/selfheal:latest@{DIGEST}",  # the digest pins it
        f"ghcr.io/example/selfheal:3f2c1d0@{DIGEST}",
    ],
)
def test_an_image_naming_one_build_is_accepted(image: str) -> None:
    assert checked_image(image) == image


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("ghcr.io/example/selfheal", "has no tag nor digest"),
        ("localhost:5000/selfheal", "has no tag nor digest"),  # a port is not a tag
        ("ghcr.io/example/selfheal:latest", "is tagged latest"),
        ("selfheal:latest", "is tagged latest"),
        ("ghcr.io/example/selfheal@sha256:abc", "is not a digest"),
        ("ghcr.io/example/selfheal@abc", "is not a digest"),
        ("ghcr.io/Example/selfheal:abc", "not a repository name"),
        ("ghcr.io/example/selfheal:", "is not a valid tag"),
        ("ghcr.io/example/selfheal:-v1", "is not a valid tag"),
        ("", "empty"),
        ("ghcr.io/example/selfheal:abc ", "whitespace"),
        ("ghcr.io/example/selfheal:v 1", "whitespace"),
    ],
)
def test_an_image_that_names_no_build_is_refused_with_the_reason(image: str, problem: str) -> None:
    with pytest.raises(ImageRefused, match=problem):
        checked_image(image)


@pytest.mark.parametrize("image", ["ghcr.io/example/selfheal", "ghcr.io/example/selfheal:latest"])
def test_an_unpinned_image_is_refused_naming_what_sets_it(image: str) -> None:
    with pytest.raises(ImageRefused) as refused:
        checked_image(image)
    assert IMAGE_VARIABLE == "MLOPS_IMAGE"
    assert "MLOPS_IMAGE" in str(refused.value)
    assert "deployments.setup --target kubernetes --image" in str(refused.value)


def test_the_check_is_pure() -> None:
    """Importable by the settings, the set-up and the KServe and KFP code alike, at no cost."""
    assert import_graph(ROOT)["tasks.images"] == set()
    assert external_imports(ROOT, "tasks.images") <= set(sys.stdlib_module_names) | {"__future__"}


def test_the_image_is_one_setting_checked_as_one_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IMAGE_VARIABLE, raising=False)
    assert get_settings().image is None  # local runs need no image
    monkeypatch.setenv(IMAGE_VARIABLE, "ghcr.io/example/selfheal:abc123")
    assert get_settings().image == "ghcr.io/example/selfheal:abc123"
    monkeypatch.setenv(IMAGE_VARIABLE, "ghcr.io/example/selfheal:latest")
    with pytest.raises(ValidationError, match="is tagged latest") as raised:
        get_settings()
    assert [error["loc"] for error in raised.value.errors()] == [("image",)]
    # The variables of the three separate checks are gone: setting one warns.
    assert unknown_variables({"MLOPS_IMAGE": "x", "MLOPS_KFP_IMAGE": "x"}) == {
        "MLOPS_KFP_IMAGE": "MLOPS_IMAGE"
    }
