"""A private redis-server on a free port, never the machine's shared one on 6379.

Without a directory (the benchmarks) it keeps nothing on disk. With one (the fault tests) it
appends every write to a file there and fsyncs it before answering, so what was acknowledged
survives a kill; such a server can be frozen (SIGSTOP, as a failover or a GC pause looks to a
client), killed, wiped (a restart without persistence) and started again on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from bench.harness.servers import free_port


def redis_server_path() -> str:
    return shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """`with RedisServer() as server:` starts it and stops it; `server.url` is its database 0."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> None:
        executable = redis_server_path()
        if not Path(executable).is_file():
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.directory is None:
            command += ["--appendonly", "no"]
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            command += ["--dir", str(self.directory), "--appendonly", "yes"]
            command += ["--appendfsync", "always"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with code {code}")
            try:
                with redis.Redis(port=self.port, socket_timeout=1) as client:
                    client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not start")

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """A clean shutdown (thawed first if frozen)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Gone at once, as a crash: only what was fsynced remains."""
        self._end(signal.SIGKILL)

    def wipe(self) -> None:
        """Lose the data, as a server restarted without persistence does."""
        assert self.process is None, "kill() first"
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _end(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.send_signal(sig)
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
