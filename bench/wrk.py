"""Driving a server with wrk (a separate C load generator) and reading its figures."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
USER_SCRIPT = """
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/users/%s" .. math.random(%d, %d) .. "/recommendations?k=10")
end
"""


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk not found: apt-get install wrk (the benchmarks' load generator)")
    return path


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def run(url: str, *, connections: int, seconds: int, script: Path | None = None) -> Load:
    command = [wrk_path(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return Load(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        errors=int(errors.group(1)) if errors else 0 + (1 if socket_errors else 0),
    )


def user_script(directory: Path, prefix: str, first: int, last: int) -> Path:
    """Requests spread over users `prefix+first` .. `prefix+last`."""
    path = directory / f"users-{prefix}{first}-{last}.lua"
    path.write_text(USER_SCRIPT % (prefix, first, last))
    return path
