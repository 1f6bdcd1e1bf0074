"""The real server (`movie-recs serve`, uvicorn) as a child process: for the end-to-end tests,
the benchmarks and the Lambda-fit measurements."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

LOG_TAIL = 3000  # characters of the server's log an error quotes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command() -> Path:
    """This environment's `movie-recs`: beside the running Python, else on PATH."""
    beside = Path(sys.executable).with_name("movie-recs")
    found = beside if beside.is_file() else shutil.which("movie-recs")
    if found is None:
        raise RuntimeError("the movie-recs command is not installed next to this Python")
    return Path(found)


def server_env(store_url: str, artifacts: Path, **extra: str) -> dict[str, str]:
    """The settings a server needs: its store, its model (`artifacts`/latest), quiet TensorFlow,
    and no API keys (a test or benchmark that wants keys passes MOVIE_RECS_API_KEYS)."""
    return {
        "MOVIE_RECS_AUTH_DISABLED": "true",
        "MOVIE_RECS_STORE_URL": store_url,
        "MOVIE_RECS_ARTIFACTS_DIR": str(artifacts),
        "MOVIE_RECS_MODEL_VERSION": "latest",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


class ServerStopped(RuntimeError):
    """The server exited before it was ready: it failed, or something outside stopped it."""


class Server:
    """One replica process on a free port, its output in `log` (written anew).

    `cli`: another checkout's `movie-recs` (a benchmark's baseline); default: this
    environment's. `spawned` is the `time.perf_counter()` just before the process started.
    `with Server(...) as server:` kills it on the way out, as a test's own server; `stop()` is
    the graceful end a benchmark waits for.
    """

    def __init__(
        self, env: Mapping[str, str], log: Path, cli: Path | None = None, workers: int = 1
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [str(cli or cli_command()), "serve", "--port", str(self.port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        self._log_file = log.open("wb")
        self.spawned = time.perf_counter()
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-LOG_TAIL:]

    def wait_ready(self, timeout: float = 90, poll: float = 0.2) -> float:
        """Poll /readyz until it answers 200; the seconds from spawn to ready.

        Raises ServerStopped if the process exits first, TimeoutError after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code is not None:
                    raise ServerStopped(
                        f"the server exited with code {code} before it was ready; "
                        f"the end of {self.log}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return time.perf_counter() - self.spawned
                except httpx.HTTPError:
                    pass
                time.sleep(poll)
        raise TimeoutError(f"server not ready in {timeout:.0f} s: {self.log_tail()}")

    def wait_settled(self, timeout: float = 120, poll: float = 0.5) -> None:
        """Wait until the server says its model is checked (or its check failed). Replicas check
        at load since they dropped TensorFlow, so this returns once ready; kept so
        a server started next is never timed against a previous one's start-up work."""
        deadline = time.monotonic() + timeout
        settled = ("movie_recs_model_checked 1.0", "movie_recs_model_check_failed 1.0")
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                try:
                    text = client.get(f"{self.url}/metrics").text
                except httpx.HTTPError:
                    text = ""
                if any(line in text for line in settled):
                    return
                time.sleep(poll)
        raise TimeoutError(f"the model was not checked in {timeout:.0f} s: {self.log_tail()}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (a graceful uvicorn shutdown), SIGKILL after `timeout` s; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
