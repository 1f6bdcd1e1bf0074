"""A private S3-compatible server on a free port: moto in server mode, as a child process, for
the tests of the S3 model registry. It speaks S3's HTTP API, so the code under test runs its
real boto3 calls against it.

`with MotoServer() as server:` starts and stops it. The server gets no AWS variables at all;
the client side gets dummy credentials and the endpoint from `client_env()` (set it with
monkeypatch; `DUMMY_ENV` alone for a client that connects nowhere), and `UNSET` names what must
not leak in from the machine (a profile, a real session token, another endpoint).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx

from bench.harness.servers import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_CA_BUNDLE",
)

# Credentials that open nothing, and no configuration file or instance metadata to find real ones.
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: S3Client | None = None

    def start(self, timeout: float = 30) -> None:
        beside = Path(sys.executable).with_name("moto_server")
        command = [str(beside)] if beside.is_file() else [sys.executable, "-m", "moto.server"]
        command += ["-H", "127.0.0.1", "-p", str(self.port)]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.process = subprocess.Popen(
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"moto_server on port {self.port} exited with code {code}")
            try:
                if httpx.get(f"{self.endpoint}/moto-api/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"moto_server on port {self.port} did not start in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def client_env(self) -> dict[str, str]:
        """What a client process needs to reach this server, and nothing real."""
        return {**DUMMY_ENV, "AWS_ENDPOINT_URL_S3": self.endpoint}

    def create_bucket(self, name: str) -> None:
        if self._admin is None:  # one client for the server's life: making one takes ~0.2 s
            self._admin = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        self._admin.create_bucket(Bucket=name)

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
