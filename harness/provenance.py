"""Where a number came from: the git commit of the code and the versions of the packages that made it
(tags of every run and figure)."""

from __future__ import annotations

import contextlib
import functools
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("harness", "numpy", "mlflow", "hydra-core", "matplotlib")


def git_commit(cwd: str | Path) -> str | None:
    """The checkout's HEAD (None outside a git checkout, or without git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache  # the packages a process imported do not change under it; ~6 ms a look-up (every job)
def _versions() -> tuple[tuple[str, str], ...]:
    found = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return tuple(found.items())


def versions() -> dict[str, str]:
    """The installed version of each of ``PACKAGES`` that is installed."""
    return dict(_versions())
