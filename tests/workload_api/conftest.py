"""Fixtures for tests that need a SPIFFE Workload API: a trust domain and servers on sockets."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.workload_api.server import Authority, WorkloadApiServer


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Not tmp_path: a unix socket path must stay under ~104 bytes, pytest's can be longer.
    with tempfile.TemporaryDirectory(prefix="wl-") as d:
        yield Path(d)


@pytest.fixture
def authority() -> Authority:
    return Authority("example.org")


@pytest.fixture
def workload_api(socket_dir: Path, authority: Authority
                 ) -> Iterator[Callable[..., WorkloadApiServer]]:
    """``workload_api("/services/etl", **options)``: a started server, stopped at teardown."""
    started: list[WorkloadApiServer] = []

    def start(path: str, **options) -> WorkloadApiServer:
        name = path.strip("/").replace("/", "-") or "root"
        server = WorkloadApiServer(socket_dir / f"{name}.sock", authority, path, **options)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()
