"""Benchmark `mlops init` on a large CSV: reading the file, and inferring the configuration.

Run from the project root: `python -m bench.init [--rows 1000000] [--json PATH]`.

Data: generate_house_prices(rows, seed=1) written as CSV into a temporary directory (10 columns:
7 numeric features, 2 categorical, the price target). A fresh subprocess then does what
`mlops init` does, step by step and timed apart: read_table (the pipeline's own CSV reader), then
infer_config, then config_yaml; pandera.infer_schema on the same frame is timed after them for
comparison (init does not use it). Last, the whole command runs once as a user runs it
(`python -m flows.cli init ...`, interpreter start and imports included).
Time: wall clock (time.perf_counter). Memory: the subprocess's peak resident set, read from
/proc/self/status (VmHWM, reset through /proc/self/clear_refs before each step; Linux only), so
the parent's generated frame does not count, as it would in the child's inherited ru_maxrss.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tasks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def measure(path: Path) -> dict[str, dict[str, float]]:
    """In this (fresh) process: each step of `mlops init` on the file, timed and measured."""
    import pandera.pandas as pa

    from bench.memory import measured_step
    from tasks.data.inference import infer_config
    from tasks.data.loading import read_table
    from tasks.data.model_config import config_yaml

    frame, read = measured_step(lambda: read_table(path))
    (config, decisions), infer = measured_step(lambda: infer_config(frame, "price", "house-prices"))
    _, render = measured_step(lambda: config_yaml(config, decisions, str(path)))
    _, pandera = measured_step(lambda: pa.infer_schema(frame))
    return {"read_csv": read, "infer_config": infer, "config_yaml": render, "pandera": pandera}


def run(rows: int) -> dict[str, object]:
    from tasks.data.synthetic import generate_house_prices

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "house_prices.csv"
        start = time.perf_counter()
        generate_house_prices(rows, seed=1).to_csv(path, index=False)
        generated = time.perf_counter() - start
        size_mib = path.stat().st_size / 2**20
        child = [sys.executable, "-m", "bench.init", "--measure", str(path)]
        steps = json.loads(subprocess.run(child, cwd=ROOT, capture_output=True, check=True).stdout)
        command = [sys.executable, "-m", "flows.cli", "init", "--data", str(path)]
        command += ["--target", "price", "--out", str(Path(tmp) / "out.yaml")]
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        whole = time.perf_counter() - start
    return {"rows": rows, "csv_mib": size_mib, "generate_s": generated, "steps": steps,
            "whole_command_s": whole}  # fmt: skip


def report(result: dict) -> str:
    lines = [
        f"{result['rows']:,} rows, CSV {result['csv_mib']:.0f} MiB"
        f" (generated and written in {result['generate_s']:.1f} s)",
        f"{'step':<34}{'seconds':>9}{'RSS at start':>14}{'peak RSS':>10}",
    ]
    names = {
        "read_csv": "read CSV (read_table)",
        "infer_config": "infer_config",
        "config_yaml": "config_yaml",
        "pandera": "pandera.infer_schema (comparison)",
    }
    for key, name in names.items():
        step = result["steps"][key]
        lines.append(
            f"{name:<34}{step['seconds']:>9.2f}{step['start_mib']:>10.0f} MiB"
            f"{step['peak_mib']:>6.0f} MiB"
        )
    lines.append(f"whole command (`python -m flows.cli init`): {result['whole_command_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rows", type=int, default=1_000_000)
    options.add_argument("--json", type=Path, help="also write the figures here")
    options.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's role
    arguments = options.parse_args(argv)
    if arguments.measure:
        print(json.dumps(measure(arguments.measure)))
        return 0
    result = run(arguments.rows)
    print(report(result))
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
