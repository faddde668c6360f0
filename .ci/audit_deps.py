"""Audit every locked dependency for known vulnerabilities; exit 1 on a finding.

With PyPI's per-release JSON reachable, this is `pip-audit --strict` over the exported lock.
Where only the per-project JSON is reachable (this build machine's registry proxy), it audits
what that JSON can vouch for — its `vulnerabilities` list describes the latest release, so every
locked package that *is* the latest release is audited — and names the rest as not audited.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "https://pypi.org/pypi/jinja2/2.10/json"  # a release with known advisories


def locked() -> dict[str, str]:
    out = subprocess.run(
        ["uv", "export", "--locked", "--all-groups", "--no-hashes", "--no-emit-project",
         "--format", "requirements-txt", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    pins = (line.split(";")[0].strip() for line in out.splitlines())
    return dict(pin.split("==", 1) for pin in pins if "==" in pin)


def fetch(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return json.load(response)
    except (urllib.error.URLError, TimeoutError, ValueError):
        return None


def pip_audit(pins: dict[str, str]) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write("".join(f"{name}=={version}\n" for name, version in pins.items()))
        requirements.flush()
        command = [sys.executable, "-m", "pip_audit", "--strict", "--disable-pip", "--no-deps",
                   "--progress-spinner", "off", "-r", requirements.name]  # fmt: skip
        return subprocess.run(command, check=False).returncode


def latest_only_audit(pins: dict[str, str]) -> int:
    def one(item: tuple[str, str]) -> tuple[str, str, str | None, list[str]]:
        name, version = item
        project = fetch(f"https://pypi.org/pypi/{name}/json")
        if project is None:
            return name, version, None, []
        ids = [v.get("id", "?") for v in project.get("vulnerabilities", [])]
        return name, version, project["info"]["version"], ids

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, sorted(pins.items())))
    findings = [r for r in results if r[2] == r[1] and r[3]]
    behind = [r for r in results if r[2] != r[1]]
    for name, version, _, ids in findings:
        print(f"VULNERABLE: {name}=={version}: {', '.join(ids)}")
    print(
        f"audit: {len(results) - len(behind)} of {len(results)} locked packages audited (they "
        f"are the latest release), {len(findings)} with known vulnerabilities; "
        f"{len(behind)} not audited here (not the latest release, or unreachable): "
        + ", ".join(f"{n}=={v}" for n, v, *_ in behind)
    )
    return 1 if findings else 0


def main() -> int:
    pins = locked()
    if fetch(PROBE) is not None:
        return pip_audit(pins)
    print(f"pip-audit's advisory source ({PROBE}) is unreachable: auditing from project JSON")
    return latest_only_audit(pins)


if __name__ == "__main__":
    sys.exit(main())
