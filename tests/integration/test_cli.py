"""The `mlops` command line against a real registry and model server."""

import subprocess
import sys

import pytest

from flows.cli import main, parser
from tasks.registry.versions import ModelRegistry
from tasks.s3 import connect
from tasks.settings import Settings
from tests.support.keys import TEST_KEY
from tests.support.specs import spec_for

pytestmark = pytest.mark.integration


def test_help_names_every_act() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for act in ("loop", "stack", "serve", "status", "promote", "rollback", "history"):
        assert act in text
    with pytest.raises(SystemExit):
        parser().parse_args(["stack", "sideways"])


def test_status_and_history(flow_env: Settings, capsys: pytest.CaptureFixture) -> None:
    registry = ModelRegistry(connect(flow_env), flow_env.model_name, TEST_KEY)
    registry.store.ensure_bucket()
    spec = spec_for(rows=1, library_versions={})
    registry.register({"m": 1}, spec)
    registry.set_alias("champion", 1, "first by hand")
    assert main(["history"]) == 0
    assert "champion  vNone → v1" in capsys.readouterr().out
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "{'champion': 1}" in out and "serving   unreachable" in out and "none yet" in out
