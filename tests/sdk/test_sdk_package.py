"""The SDK is its own package: a flat public API, and a thin client that needs httpx only."""

from __future__ import annotations

import inspect
import subprocess
import sys
import tomllib

import pdp_client

from tests.conftest import REPO

SDK = REPO / "sdk" / "python"


def test_all_names_exactly_the_public_api() -> None:
    public = {n for n in dir(pdp_client)
              if not n.startswith("_") and not inspect.ismodule(getattr(pdp_client, n))}
    assert set(pdp_client.__all__) == public
    assert {"PDPClient", "AsyncPDPClient", "DecisionCache", "Decision"} <= public


def test_the_thin_client_depends_on_httpx_only() -> None:
    project = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["httpx"]
    assert set(project["optional-dependencies"]) == {"fastapi", "embedded", "spiffe"}


def test_importing_the_client_loads_none_of_the_servers_dependencies() -> None:
    code = ("import sys, pdp_client; "
            "heavy = [m for m in ('pdp', 'cedarpy', 'fastapi', 'pydantic', 'starlette', 'jwt') "
            "if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=SDK, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
