"""Fixtures for tests that need a SPIFFE Workload API: a trust domain and servers on sockets."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import POLICIES
from tests.server import ServerProcess, start_server
from tests.workload_api.server import Authority, WorkloadApiServer

AUDIENCE = "spiffe://example.org/pdp"
SERVICE = "/services/datasets-api"


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


@pytest.fixture
def pdp(tmp_path: Path, workload_api) -> Iterator[ServerProcess]:
    """A real ``pdp serve`` (not --dev) trusting example.org from its own Workload API
    (``/pdp``), answering only the datasets service (``pep_allowlist``)."""
    pdp_api = workload_api("/pdp")
    shutil.copytree(POLICIES, tmp_path / "policies")
    (tmp_path / "pdp.toml").write_text(f"""
audience = "{AUDIENCE}"
policies = "policies"
state_dir = "state"
pep_allowlist = ["spiffe://example.org{SERVICE}"]
workload_api_socket = "{pdp_api.address}"

[[trust_domains]]
name = "example.org"
workload_api = true

[live.business_hours]
start = "00:00"
end = "23:59:59.999999"
days = [0, 1, 2, 3, 4, 5, 6]
""")
    server = start_server(["--config", "pdp.toml"], cwd=tmp_path)
    yield server
    server.stop()
