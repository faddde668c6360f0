"""Security checks that can fail: the secret scanner, loopback-only servers."""

from __future__ import annotations

import secrets
import string
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from infra.local_s3 import start_s3_server
from infra.model_server import start_model_server
from infra.prefect_worker import start_worker
from tasks.decisions.routing import ServeOptions
from tasks.s3 import connect
from tests.support.stack import settings_for

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "::1"}


def _scan(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "scan_secrets.py"), str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_secret_scanner_fails_on_a_planted_key_and_passes_the_repository(
    tmp_path: Path, reliability
) -> None:
    # Built at run time, so this file holds no key for the scanner (or anyone) to find.
    key_id = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
    planted = f'ACCESS_KEY = "{key_id}"\nSECRET = "{secrets.token_urlsafe(30)}"\n'
    (tmp_path / "settings.py").write_text(planted)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "settings.py"], check=True)
    dirty, clean = _scan(tmp_path), _scan(ROOT)
    assert dirty.returncode == 1 and "settings.py:1: AWS Access Key" in dirty.stdout, dirty
    assert clean.returncode == 0, clean.stdout
    reliability(
        "security",
        "secret scanner in CI",
        done="planted a generated AWS key pair in a scratch repository; scanned it and this one",
        expected="scratch repository fails (exit 1) naming file:line; this repository passes",
        observed=f"scratch: exit {dirty.returncode}, "
        f"{dirty.stdout.count('secret found')} findings; repository: exit {clean.returncode}, "
        f"{clean.stdout.strip().splitlines()[-1]}",
    )


def _listening() -> dict[str, set[str]]:
    """Every TCP socket listened on by this process's descendants: process name → addresses."""
    found: dict[str, set[str]] = {}
    for process in psutil.Process().children(recursive=True):
        try:
            sockets = process.connections(kind="inet")
            name = " ".join(process.cmdline()[:3])[-60:]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for sock in sockets:
            if sock.status == psutil.CONN_LISTEN:
                found.setdefault(name, set()).add(f"{sock.laddr.ip}:{sock.laddr.port}")
    return found


@pytest.mark.integration
def test_every_server_the_project_starts_binds_loopback_only(
    prefect_server, tmp_path: Path, reliability
) -> None:
    seaweed, minio = start_s3_server("seaweedfs"), start_s3_server("minio")
    server = worker = None
    try:
        connect(settings_for(seaweed)).ensure_bucket()
        server = start_model_server(
            seaweed.env(), "loopback-check", options=ServeOptions(log_requests=False)
        )
        worker = start_worker("loopback-check", tmp_path)
        time.sleep(3)  # let the worker come up fully (it may open a health server)
        listening = _listening()
    finally:
        for started in (worker, server, minio, seaweed):
            if started is not None:
                started.stop()
    addresses = {address for found in listening.values() for address in found}
    outside = sorted(a for a in addresses if a.rsplit(":", 1)[0] not in LOOPBACK)
    kinds = {"weed": 0, "minio": 0, "infra.model_server_main": 0, "prefect": 0}
    for name in listening:
        for kind in kinds:
            kinds[kind] += kind in name
    assert not outside, f"listening beyond loopback: {outside} in {listening}"
    assert all(kinds.values()), f"expected every kind of server to be listening: {listening}"
    reliability(
        "security",
        "every server binds loopback",
        done="started SeaweedFS, MinIO, the model server, a Prefect worker next to the Prefect "
        "server; listed every listening TCP socket of every child process (psutil)",
        expected="no socket on an address other than 127.0.0.1 / ::1",
        observed=f"{len(addresses)} listening sockets in {len(listening)} processes, "
        f"{len(outside)} beyond loopback",
    )
