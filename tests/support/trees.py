"""Small file trees for the tests of the project's own rules (layering, layout, paths), and the
tracked files those rules read."""

from __future__ import annotations

import subprocess
from pathlib import Path


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` ({relative path: text}) under `root`; returns `root`."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def git_tree(root: Path, files: dict[str, str]) -> Path:
    """`write_tree`, as a git repository with every file added (tracked)."""
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    write_tree(root, files)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    return root


def tracked_files(root: Path, *patterns: str) -> list[str]:
    """`git ls-files [patterns]` in `root`: the files a checkout has."""
    result = subprocess.run(
        ["git", "ls-files", *patterns], cwd=root, capture_output=True, text=True, check=True
    )
    return result.stdout.split()
