"""Where and from what a figure was measured: the machine and the commit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Written by the benchmarks themselves: a run that changed only this file leaves the tree clean.
RESULTS = "docs/benchmarks.md"


def _proc_field(path: str, name: str) -> str | None:
    """The value of the first `name: value` line of a /proc file."""
    try:
        with open(path) as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _proc_field("/proc/cpuinfo", "model name") or "unknown CPU"


def cores() -> int:
    return os.cpu_count() or 1


def memory_gib() -> float | None:
    total = _proc_field("/proc/meminfo", "MemTotal")  # "16314532 kB"
    return round(int(total.split()[0]) / 1024**2, 1) if total else None


def describe() -> str:
    """One line: `CPU model, N cores, M GiB`."""
    memory = memory_gib()
    return f"{cpu_model()}, {cores()} cores, " + (
        f"{memory:g} GiB" if memory is not None else "memory unknown"
    )


def commit(root: Path = ROOT) -> str:
    """The short hash of HEAD, `+dirty` when the work tree differs from it (other than in
    docs/benchmarks.md); "unknown" outside a git checkout."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown"
    changed = git("status", "--porcelain", "--", ".", f":(exclude){RESULTS}")
    return head + ("+dirty" if changed else "")
