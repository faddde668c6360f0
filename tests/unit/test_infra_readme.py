"""infra/README.md walks an operator from an empty cluster to the loop: every command in it is
exercised by a named test or workflow step, and the ones that can run here run as written."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "infra" / "README.md"
BLOCK = re.compile(r"```bash\n(.*?)```\n+(.*?)\n", re.S)
REFERENCE = re.compile(r"`([^`\s]*/[^`\s]*)`")  # paths: a slash in them


def blocks(text: str) -> list[tuple[str, str]]:
    """(commands, the line after the block) for every bash block."""
    return [(match[1], match[2]) for match in BLOCK.finditer(text)]


def unexercised(text: str, root: Path) -> list[str]:
    """Blocks without an "Exercised by:" line, or naming a file or test that does not exist."""
    problems = []
    for commands, after in blocks(text):
        first = commands.strip().splitlines()[0]
        if not after.startswith("Exercised by:"):
            problems.append(f"{first!r}: no 'Exercised by:' line after it")
            continue
        references = REFERENCE.findall(after)
        if not references:
            problems.append(f"{first!r}: 'Exercised by:' names nothing")
        for reference in references:
            path, _, test = reference.partition("::")
            if not (root / path).is_file():
                problems.append(f"{first!r}: {path} does not exist")
            elif test and not re.search(
                rf"^def {re.escape(test)}\(", (root / path).read_text(), re.M
            ):
                problems.append(f"{first!r}: {path} has no test {test}")
    return problems


def test_every_command_block_names_what_exercises_it() -> None:
    text = README.read_text()
    assert len(blocks(text)) >= 7
    assert unexercised(text, ROOT) == []


def test_the_check_catches_a_missing_or_wrong_reference(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("def test_real() -> None: ...\n")
    text = (
        "```bash\nkubectl apply -k a\n```\n\nsome prose\n\n"
        "```bash\nkubectl apply -k b\n```\n\nExercised by: `tests/test_x.py::test_gone`\n\n"
        "```bash\nkubectl apply -k c\n```\n\nExercised by: `tests/test_x.py::test_real`\n"
    )
    assert unexercised(text, tmp_path) == [
        "'kubectl apply -k a': no 'Exercised by:' line after it",
        "'kubectl apply -k b': tests/test_x.py has no test test_gone",
    ]


def block_with(command: str) -> str:
    (found,) = [commands for commands, _ in blocks(README.read_text()) if command in commands]
    return found


def argv_of(command: str, module: str) -> list[str]:
    """The arguments the README passes to `python -m module`, variables left as written."""
    (line,) = [x for x in block_with(module).splitlines() if f"-m {module}" in x]
    words = shlex.split(line)
    return words[words.index(module) + 1 :]


def test_the_set_up_commands_parse_as_their_modules_expect() -> None:
    from deployments.setup import target_from

    image = "ghcr.io/example/selfheal-mlops:abc1234"
    argv = [
        arg.replace("$IMAGE", image) for arg in argv_of("deployments.setup", "deployments.setup")
    ]
    target = target_from(argv)
    assert (target.pool, target.image) == ("mlops-kubernetes", image)
    from infra.minio_setup import parse_args as minio_args

    minio = minio_args(argv_of("infra.minio_setup", "infra.minio_setup"))
    assert (minio.endpoint, minio.bucket, minio.model) == (
        "http://127.0.0.1:9000",
        "mlops",
        "house-price",
    )


@pytest.mark.skipif(
    shutil.which("kubectl") is None or shutil.which("envsubst") is None,
    reason="kubectl (with kustomize) and envsubst are needed to run the step as written",
)
def test_the_secret_step_fills_every_template_and_refuses_an_empty_value(tmp_path: Path) -> None:
    """Step 3 as written (its `export …=...` placeholders aside), with `kubectl apply` recording
    what it would send: every Secret filled, and nothing sent when one value is missing."""
    script = "\n".join(
        line for line in block_with("MLOPS_SECRET_VARS").splitlines()
        if not line.startswith("export ")
    )  # fmt: skip
    applied = tmp_path / "applied.yaml"
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = apply ]; then cat > {applied}; else exec '
        f'{shutil.which("kubectl")} "$@"; fi\n'
    )
    fake.chmod(0o755)
    names = re.findall(
        r"\$([A-Z_][A-Z0-9_]*)", script.split("MLOPS_SECRET_VARS=")[1].splitlines()[0]
    )
    values = {name: secrets.token_hex(8) for name in names}
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "HOME": str(tmp_path), **values}

    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    sent = list(yaml.safe_load_all(applied.read_text()))
    assert {doc["metadata"]["name"] for doc in sent} >= {"mlops-s3-serving", "mlops-manifest-key"}
    filled = [v for doc in sent for v in doc.get("stringData", {}).values()]
    assert "${" not in applied.read_text() and set(filled) <= set(values.values())
    assert set(values.values()) <= set(filled)  # every value reached a Secret

    applied.unlink()
    short = env | {"MLOPS_MANIFEST_KEY": ""}
    refused = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=short, capture_output=True, text=True
    )
    assert "MLOPS_MANIFEST_KEY is not set" in refused.stderr and not applied.exists()
