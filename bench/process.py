"""Running the real server (`movie-recs serve`, uvicorn) as a child process: for the end-to-end
tests, the benchmarks and the Lambda-fit measurements."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One replica process; `stop()` sends SIGTERM and returns the exit code. `cli`: another
    checkout's `movie-recs` (a benchmark's baseline); default: this environment's."""

    def __init__(
        self, env: Mapping[str, str], log: Path, cli: Path | None = None, workers: int = 1
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cli = cli or Path(sys.executable).with_name("movie-recs")
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            [str(cli), "serve", "--port", str(self.port)]
            + (["--workers", str(workers)] if workers > 1 else []),
            env={**os.environ, **env},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90, poll: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(poll)
        raise TimeoutError(f"server not ready: {self.log.read_text()[-3000:]}")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()


def server_env(store_url: str, artifacts: Path, **extra: str) -> dict[str, str]:
    return {
        "MOVIE_RECS_STORE_URL": store_url,
        "MOVIE_RECS_ARTIFACTS_DIR": str(artifacts),
        "MOVIE_RECS_MODEL_VERSION": "latest",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }
