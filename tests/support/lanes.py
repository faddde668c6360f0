"""Two lanes, chosen by folder: fast (unit, data, model: no server, about a minute) and slow
(integration, reliability: the real S3, Prefect and model servers, several minutes each).

tests/conftest.py marks every collected test with its lane, so `pytest -m fast` and
`pytest -m slow` split the suite with nothing left over and nothing run twice. A lane is never
set by hand: a test that carries a lane marker itself, or sits outside these folders, stops the
run at collection.
"""

from __future__ import annotations

from pathlib import Path

LANES: dict[str, str] = {
    "unit": "fast",
    "data": "fast",
    "model": "fast",
    "integration": "slow",
    "reliability": "slow",
}
LANE_MARKERS = frozenset(LANES.values())


def lane_of(path: Path, tests_root: Path) -> str:
    """The lane of the test file at `path`, from its top folder under `tests_root`."""
    try:
        parts = Path(path).resolve().relative_to(Path(tests_root).resolve()).parts
    except ValueError:
        raise ValueError(f"{path} is not under {tests_root}") from None
    if len(parts) < 2 or parts[0] not in LANES:
        raise ValueError(f"{path} is in no lane: put it under one of tests/{{{', '.join(LANES)}}}/")
    return LANES[parts[0]]
