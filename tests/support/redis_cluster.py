"""A private three-node Redis Cluster on free ports (no replicas, nothing on disk but the nodes'
cluster files), for the tests that put user activity on a cluster as ElastiCache cluster mode
does. `with LocalRedisCluster(tmp) as cluster:` starts and joins it; `cluster.url` is one node's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bench.harness.redis import redis_server_path
from bench.harness.servers import free_port

NODES = 3


class LocalRedisCluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # Each node also listens on a cluster bus port (by default its port + 10000, which may
        # be taken or past 65535): both come from the OS's free ports.
        self.ports = [free_port() for _ in range(NODES)]
        self.bus_ports = [free_port() for _ in range(NODES)]
        self.url = f"redis://127.0.0.1:{self.ports[0]}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, timeout: float = 20) -> None:
        executable = redis_server_path()
        if not Path(executable).is_file():
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            command = [executable, "--port", str(port), "--bind", "127.0.0.1"]
            command += ["--cluster-enabled", "yes", "--cluster-port", str(bus)]
            command += ["--cluster-config-file", str(self.directory / f"nodes-{port}.conf")]
            command += ["--dir", str(self.directory), "--save", "", "--appendonly", "no"]
            self.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + timeout
        for port in self.ports:
            self._wait(deadline, lambda client: bool(client.ping()), port)
        create = ["redis-cli", "--cluster", "create"]
        create += [f"127.0.0.1:{port}" for port in self.ports]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=timeout)
        for port in self.ports:
            self._wait(deadline, _cluster_ok, port)

    def _wait(self, deadline: float, ready: Callable[[redis.Redis], bool], port: int) -> None:
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a cluster node exited with code {process.returncode}")
            try:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    if ready(client):
                        return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"cluster node on port {port} did not become ready")

    def flush(self) -> None:
        """Empty every node (each holds its own slots' keys)."""
        for port in self.ports:
            with redis.Redis(port=port, socket_timeout=5) as client:
                client.flushall()

    def node(self, index: int) -> redis.Redis:
        """A plain client of one node (the caller closes it)."""
        return redis.Redis(port=self.ports[index], socket_timeout=5)

    def freeze(self) -> None:
        """Every node stops answering (SIGSTOP), as a cluster in trouble looks to a client."""
        for process in self.processes:
            os.kill(process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for process in self.processes:
            os.kill(process.pid, signal.SIGCONT)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes = []

    def __enter__(self) -> LocalRedisCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_ok(client: redis.Redis) -> bool:
    info = client.cluster("INFO")
    return isinstance(info, dict) and info.get("cluster_state") == "ok"
