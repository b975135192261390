"""Conventions shared by benchmarks: output folder, environment record."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def output_dir(name: str, base: str | Path = "results") -> Path:
    """Create and return ``<base>/<name>/<timestamp>/``."""
    path = Path(base) / name / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_env(path: Path, **extra: object) -> None:
    """Write ``env.json``: package versions, CPU count, git commit and ``extra``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "git_commit": commit,
        **{pkg: version(pkg) for pkg in ("flwr", "torch", "numpy", "ray", "pandas")},
        **extra,
    }
    (path / "env.json").write_text(json.dumps(env, indent=2))
