"""A private redis-server on a free loopback port, for tests that kill and restart it.

Never the machine's shared instance on 6379: each test gets its own process,
data directory and port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.server import free_port


def require_redis_server() -> str:
    """The redis-server binary; skip (or fail under PDP_REQUIRE_SERVICES=1) without it."""
    binary = shutil.which("redis-server")
    if binary is not None:
        return binary
    message = "redis-server is not installed (apt-get install redis-server)"
    if os.environ.get("PDP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; PDP_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


class RedisServer:
    """``redis-server`` with append-only persistence in ``directory``, on ``port``."""

    def __init__(self, binary: str, directory: Path, port: int | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", str(self.directory)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()}")
            if self._pong():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("redis-server did not answer PING")

    def kill(self) -> None:
        """SIGKILL: as abrupt as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False
