"""Start a real `pdp serve` process on a free loopback port, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.http import kill_tree


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill_9(self) -> None:
        """SIGKILL the whole server at once, the supervisor and its workers, as a crash
        would (:func:`bench.http.kill_tree`: each process stopped first, so that no worker
        sees its supervisor die and shuts down cleanly)."""
        kill_tree(self.process.pid)
        self.process.wait(timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if sig == signal.SIGKILL:  # a crash takes the worker too, not only the supervisor
            self.kill_9()
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s children (Linux ``/proc``); none once it has gone."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start_server(args: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
                 timeout: float = 30.0) -> ServerProcess:
    port = free_port()
    log = cwd / f"server-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "pdp.cli.main", "serve", "--port", str(port), *args],
        cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})})
    server = ServerProcess(process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pdp serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"pdp serve did not become healthy:\n{log.read_text()}")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pdp.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
