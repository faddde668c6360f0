"""The locked environment is a current, consistent set: an unpinned resolver can silently fall
back to years-old releases (prefect 2, kserve 0.13, pydantic 1), and this test would notice."""

from importlib.metadata import version

import pytest
from packaging.version import Version

FLOORS = {
    "prefect": "3.9",
    "prefect-kubernetes": "0.8",
    "kserve": "0.21",
    "kfp": "2.17",
    "kfp-kubernetes": "2.17",
    "evidently": "0.7.20",
    "pydantic": "2.11",
    "scikit-learn": "1.7",
    "minio": "7.2.20",
    "pandera": "0.35",
}


@pytest.mark.parametrize(("package", "floor"), sorted(FLOORS.items()))
def test_installed_release_is_current(package: str, floor: str) -> None:
    assert Version(version(package)) >= Version(floor), f"{package} {version(package)} < {floor}"


def test_pandas_stays_below_3_for_evidently() -> None:
    assert Version(version("pandas")) < Version("3")
    import evidently  # noqa: F401  (fails to import with pandas 3)
