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


def write_pdp_config(directory: Path, pdp_api: WorkloadApiServer, *, tls: bool = False
                     ) -> None:
    """The example bundle and a ``pdp.toml`` in ``directory`` for a real ``pdp serve`` (not
    --dev): it trusts example.org from its own Workload API (``pdp_api``), answers only the
    datasets service (``pep_allowlist``) at any hour, and with ``tls`` serves TLS on its own
    X.509-SVID from that Workload API (``tls_workload_api``)."""
    shutil.copytree(POLICIES, directory / "policies")
    (directory / "pdp.toml").write_text(f"""
audience = "{AUDIENCE}"
policies = "policies"
state_dir = "state"
pep_allowlist = ["spiffe://example.org{SERVICE}"]
workload_api_socket = "{pdp_api.address}"
tls_workload_api = {"true" if tls else "false"}

[[trust_domains]]
name = "example.org"
workload_api = true

[live.business_hours]
start = "00:00"
end = "23:59:59.999999"
days = [0, 1, 2, 3, 4, 5, 6]
""")


@pytest.fixture
def pdp(tmp_path: Path, workload_api) -> Iterator[ServerProcess]:
    """A real ``pdp serve`` on the configuration of ``write_pdp_config``."""
    write_pdp_config(tmp_path, workload_api("/pdp"))
    server = start_server(["--config", "pdp.toml"], cwd=tmp_path)
    yield server
    server.stop()
