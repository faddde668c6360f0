"""The README's own-data path, as written: a CSV to a served model in four commands.

The README's block is read and each command run: `mlops stack up &` is the session's real stack
(SeaweedFS and a Prefect server; its addresses in the environment, as `stack up` records them),
`mlops serve … &` a real model server process on a free port, the others `mlops` in this
process. Then the served model answers, a second `mlops train` on new data is a canary, and
`mlops drift` judges the model's own data.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from flows.cli import main as cli_main
from flows.own_data import serving_record
from tasks.registry.configs import read_config
from tasks.registry.versions import open_registry
from tasks.settings import Settings, get_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Your own data set") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)[1]
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


def energy(rows: int, seed: int) -> pd.DataFrame:
    """Energy use falls with temperature; the south site uses less; never below 0 kWh."""
    rng = np.random.default_rng(seed)
    temperature = rng.uniform(-10, 35, rows)
    site = rng.choice(["north", "south"], rows)
    kwh = 60 - 1.6 * temperature - 8 * (site == "south") + rng.normal(0, 4, rows)
    return pd.DataFrame({"temperature_c": temperature.round(1), "site": site,
                         "kwh": np.clip(kwh, 0, None).round(2)})  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_live(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the model server exited"
        try:
            if httpx.get(f"{url}/v2/health/live", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"no model server at {url}")


def test_the_readme_path_from_a_csv_to_a_served_model(
    flow_env: Settings, tmp_path: Path, monkeypatch, capsys
) -> None:
    commands = readme_commands()
    assert len(commands) <= 4 and all(c[:3] == ["uv", "run", "--locked"] for c in commands)
    monkeypatch.chdir(tmp_path)
    energy(800, seed=1).to_csv("energy.csv", index=False)
    server = None
    try:
        for command in commands:
            args = [word for word in command[3:] if word != "&"]
            if args[:2] == ["mlops", "stack"]:
                continue  # the session's stack is up: its addresses are in the environment
            if args[:2] == ["mlops", "serve"]:
                args[args.index("--port") + 1] = port = str(free_port())
                server = subprocess.Popen(
                    [sys.executable, "-m", "flows.cli", *args[1:]], cwd=tmp_path,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                wait_live(f"http://127.0.0.1:{port}", server)
                continue
            assert cli_main(args[1:]) == 0, capsys.readouterr()
        name = "energy"
        out = capsys.readouterr().out
        assert "target kwh: regression" in out and "registered v1" in out and "champion" in out
        registry = open_registry(get_settings(model_name=name))
        assert read_config(registry).contract.target.name == "kwh"
        assert registry.aliases() == {"champion": 1}
        url = f"http://127.0.0.1:{port}"
        answer = httpx.post(
            f"{url}/v1/models/{name}:predict",
            json={"instances": [{"temperature_c": 5.0, "site": "north"}]},
        )
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
        assert 40 < answer.json()["predictions"][0] < 65  # ≈ 60 − 1.6·5

        # Again on new data: the champion stays, the new version is a canary, then judged.
        energy(800, seed=2).to_csv("energy-2.csv", index=False)
        code = cli_main(["train", "--name", name, "--data", "energy-2.csv", "--percent", "20",
                         "--max-wait-s", "5"])  # fmt: skip
        assert code == 0
        out = capsys.readouterr().out
        assert "registered v2" in out and "canary" in out and "canary analysis" in out
        # No traffic in its 5 s window: undecided, so rolled back; the champion stays.
        assert registry.alias("champion") == 1 and registry.alias("canary") is None
        assert cli_main(["drift", "--name", name, "--data", "energy.csv"]) == 0
        assert "drifted=False" in capsys.readouterr().out.replace(" ", "")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        assert not serving_record("energy").exists() or server is None or server.returncode


def test_a_public_data_set_from_init_to_drift_on_the_stack(
    flow_env: Settings, tmp_path: Path, monkeypatch, capsys
) -> None:
    """scikit-learn's diabetes data (real measurements) through init → check → train (retrain,
    deploy) → serve → drift, with the `mlops` commands, beside any other model on the stack."""
    from sklearn.datasets import load_diabetes

    monkeypatch.chdir(tmp_path)
    frame = load_diabetes(as_frame=True).frame
    frame.to_csv("diabetes.csv", index=False)
    name = f"diabetes-{flow_env.model_name}"  # the session's S3 is shared: a name of its own
    assert cli_main(["init", "--data", "diabetes.csv", "--target", "target", "--name", name,
                     "--register"]) == 0  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--name", name, "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_live(f"http://127.0.0.1:{port}", server)
        assert cli_main(["check", "--name", name, "--data", "diabetes.csv"]) == 0
        assert cli_main(["train", "--name", name, "--data", "diabetes.csv"]) == 0
        out = capsys.readouterr().out
        assert "passed=True" in out.replace(" ", "") and "registered v1" in out
        rows = frame.drop(columns="target").head(50).to_dict("records")
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/models/{name}:predict",
                            json={"instances": rows})  # fmt: skip
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
        predictions = answer.json()["predictions"]
        assert min(predictions) >= 25 and max(predictions) <= 346  # the target's observed range
        assert cli_main(["drift", "--name", name, "--data", "diabetes.csv"]) == 0
        assert "drifted=False" in capsys.readouterr().out.replace(" ", "")
    finally:
        server.terminate()
        server.wait(30)
