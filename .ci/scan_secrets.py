"""Fail when detect-secrets finds a secret in the files git tracks under a root (default: here).

A finding that is not a secret (a checksum, a variable name) is marked where it stands with
`# pragma: allowlist secret`, so every exception is visible in review.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def scan(root: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    findings = json.loads(result.stdout)["results"]
    return [
        f"{path}:{item['line_number']}: {item['type']}"
        for path, items in sorted(findings.items())
        for item in items
    ]


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    findings = scan(root)
    for finding in findings:
        print(f"secret found: {finding}")
    print(f"detect-secrets: {len(findings)} finding(s) in the tracked files of {root}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
