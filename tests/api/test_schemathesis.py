"""Schemathesis against a real `pdp serve --dev`: every operation of /openapi.json, all checks.

The server must answer whatever schemathesis sends (valid, invalid and
hostile data, undeclared methods, stateful sequences) without a 5xx, with a
status code, media type and body that /openapi.json declares. Admin calls carry
fresh dev credentials: the SRE console (context, identity, policy) and, for the
`audit` operations, the auditor (policies/admin.cedar). The run changes state
freely (revocations, incidents, grants, reloads): the state directory is thrown
away. Bounded to about two minutes (``PDP_SCHEMATHESIS_MAX_TIME`` seconds).
Ref: https://schemathesis.readthedocs.io/
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POLICIES
from tests.server import run_cli, start_server

pytestmark = pytest.mark.slow

SRE = "spiffe://example.org/ops/sre-console"
AUDITOR = "spiffe://example.org/audit/auditor"
MAX_TIME_S = int(os.environ.get("PDP_SCHEMATHESIS_MAX_TIME", "60"))
SEED = os.environ.get("PDP_SCHEMATHESIS_SEED", "20261206")


def _token(spiffe_id: str, cwd: Path) -> str:
    minted = run_cli("token", "--spiffe-id", spiffe_id, "--ttl", "10m", cwd=cwd)
    assert minted.returncode == 0, minted.stderr
    return minted.stdout.strip()


def _config(path: Path, sre: str, auditor: str) -> Path:
    """Credentials, and the few expectations the checks' defaults cannot know."""
    path.write_text(f"""\
headers = {{ Authorization = "Bearer {sre}" }}
# Free-form path ids (`/v1/context/incidents/{{incident_id}}`) make schemathesis discard
# many generated paths (slashes, dots); that is its generator's limit, not the API's.
suppress-health-check = ["filter_too_much"]

# A body over `max_body_bytes` (413) or headers over 128 KiB (431) are refusals too.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, 431]

[[operations]]
include-tag = "audit"
headers = {{ Authorization = "Bearer {auditor}" }}
# Cursors are opaque and timestamps are parsed by the log: a well-typed but unusable one is 400.
checks.positive_data_acceptance.expected-statuses = ["2XX", 400, 401, 403, 404, 409]

# The credential broker (RFC 8693): a well-typed exchange with a credential that does not
# verify, or that the policies refuse, is an RFC 6749 error (400, 403), as the RFC says.
# (Before the per-path entries below: the first matching entry applies.)
[[operations]]
include-tag = "broker"
checks.positive_data_acceptance.expected-statuses = ["2XX", 400, 401, 403, 404, 422, 503]
{_SEMANTIC}
""")
    return path


# Admin writes that the schema types fully but whose meaning only the PDP can check: a grant
# template must be in the bundle, a revocation's fields depend on its kind, an incident's scope
# and a risk entry's end follow their own grammar. Those answer 422 (a declared problem).
_SEMANTIC = "".join(f"""
[[operations]]
include-path = "{path}"
include-method = "{method}"
checks.positive_data_acceptance.expected-statuses = ["2XX", 401, 403, 404, 409, 422]
""" for method, path in [("POST", "/v1/grants"), ("POST", "/v1/revocations"),
                         ("POST", "/v1/context/incidents"), ("PUT", "/v1/context/risk")])


@pytest.mark.timeout(MAX_TIME_S + 120)
def test_schemathesis_finds_no_5xx_and_no_schema_violation(tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.fail("schemathesis is not installed: `pip install -e '.[test]'`")
    shutil.copytree(POLICIES, tmp_path / "policies")
    server = start_server(["--dev"], cwd=tmp_path)
    try:
        config = _config(tmp_path / "schemathesis.toml", _token(SRE, tmp_path),
                         _token(AUDITOR, tmp_path))
        run = subprocess.run(
            [str(st), "--no-color", "--config-file", str(config), "run",
             f"{server.url}/openapi.json", "--checks", "all", "--max-time", str(MAX_TIME_S),
             # One worker: hypothesis describes strategies with ast.parse, which CPython 3.11
             # can fail when two threads parse at once ("AST constructor recursion depth
             # mismatch"): a flake of the tool, not a finding.
             "--seed", SEED, "--workers", "1", "--request-timeout", "20",
             "--warnings", "off"],
            cwd=tmp_path, capture_output=True, text=True, timeout=MAX_TIME_S + 90)
    finally:
        server.stop()
    if run.returncode != 0:
        server_log = server.log.read_text(errors="replace")[-4000:]
        pytest.fail(f"schemathesis found problems (exit {run.returncode}):\n{run.stdout}\n"
                    f"{run.stderr}\n--- pdp serve log (tail) ---\n{server_log}",
                    pytrace=False)
