"""A real OpenID provider that is not ours: panva's `oidc-provider` (npm), on loopback.

It issues RFC 9068 JWT access tokens (client_credentials grant, resource
indicators, typ at+jwt). A real `pdp serve` trusts it through its discovery
document alone; the test checks that a token it issues is accepted (with its
scope and groups claims mapped), that tokens still work after the provider
rotates its signing key once the PDP has refreshed, and that a token of
another issuer (a second provider) is refused.

The provider is installed with `npm install` into tests/identity/oidc/ (cached
in node_modules). Without node/npm the test skips, or fails under
PDP_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.npm_packages import npm_installed
from tests.server import ServerProcess, start_server

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT = {"grant_type": "client_credentials", "client_id": "reporter-agent",
          "client_secret": "agent-secret", "scope": "reports:read"}


@pytest.fixture(scope="module")
def oidc_provider_installed() -> Path:
    npm_installed(OIDC_DIR, "oidc-provider/package.json", purpose="to run the real oidc-provider")
    return OIDC_DIR


@dataclass
class Provider:
    process: subprocess.Popen[str]
    issuer: str

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def token(self) -> str:
        r = httpx.post(f"{self.issuer}/token", data=CLIENT, timeout=10)
        r.raise_for_status()
        return str(r.json()["access_token"])

    def rotate(self) -> dict[str, object]:
        return httpx.post(f"{self.issuer}/__rotate", timeout=10).json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def provider_factory(oidc_provider_installed: Path) -> Iterator[Callable[[], Provider]]:
    started: list[Provider] = []

    def start() -> Provider:
        process = subprocess.Popen(["node", "provider.mjs", "pdp"], cwd=oidc_provider_installed,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()  # "ready <issuer>", printed once listening
        if not line.startswith("ready "):
            process.kill()
            raise RuntimeError(f"oidc-provider did not start: {line!r}")
        provider = Provider(process, line.split()[1])
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


BUNDLE_SCHEMA = """
namespace Reports {
  entity Report;
  action "read" appliesTo {
    principal: Pdp::Workload,
    resource: Report,
    context: { credential: Pdp::Credential },
  };
}
"""
BUNDLE_POLICY = """
@id("reports.oidc-clients")
@reason("Clients in the reporting group with scope reports:read may read reports.")
permit (principal in Pdp::Group::"reporting", action == Reports::Action::"read", resource)
when { principal.scopes.contains("reports:read") && principal.credential_kind == "jwt" };
"""


@pytest.fixture(scope="module")
def pdp(tmp_path_factory: pytest.TempPathFactory,
        provider_factory: Callable[[], Provider]) -> Iterator[tuple[ServerProcess, Provider]]:
    provider = provider_factory()
    workdir = tmp_path_factory.mktemp("oidc-pdp")
    bundle = workdir / "policies"
    bundle.mkdir()
    (bundle / "schema.cedarschema").write_text(BUNDLE_SCHEMA)
    (bundle / "reports.cedar").write_text(BUNDLE_POLICY)
    (workdir / "pdp.toml").write_text(f"""
policies = "{bundle}"
watch_policies = false
pep_allowlist = ["*"]

[[issuers]]
name = "oidc-provider"
issuer = "{provider.issuer}"
discovery_url = "{provider.discovery_url}"
token_type = "at+jwt"
principal_claim = "client_id"
scopes_claim = "scope"
groups_claim = "groups"
max_lifetime_s = 600
refresh_s = 1
""")
    server = start_server(["--config", str(workdir / "pdp.toml")], cwd=workdir)
    yield server, provider
    server.stop()


def decide(server: ServerProcess, token: str) -> dict[str, object]:
    return httpx.post(f"{server.url}/v1/authorize", timeout=10, json={
        "subject": {"token": token}, "action": "read",
        "resource": {"type": "Reports::Report", "id": "q3"}}).json()  # type: ignore[no-any-return]


def test_a_token_issued_by_the_real_provider_is_accepted(pdp: tuple[ServerProcess, Provider]) -> None:
    server, provider = pdp
    decision = decide(server, provider.token())
    assert decision["decision"] == "allow", decision["explanation"]
    assert decision["principal"] == 'Pdp::Workload::"reporter-agent"'
    assert decision["reasons"][0]["policy"] == "reports.oidc-clients"  # type: ignore[index]
    ready = httpx.get(f"{server.url}/readyz").json()
    [source] = ready["identity"]["sources"]
    assert source["source"] == "jwks:oidc-provider" and source["ok"] is True


def test_tokens_still_work_after_the_provider_rotates_keys_once_the_pdp_refreshed(
        pdp: tuple[ServerProcess, Provider]) -> None:
    server, provider = pdp
    before = provider.token()
    rotation = provider.rotate()
    after = provider.token()
    assert after.split(".")[0] != before.split(".")[0]  # another kid signs now
    deadline = time.monotonic() + 30
    decision = decide(server, after)
    while decision["decision"] != "allow" and time.monotonic() < deadline:
        assert decision["reason_codes"] == ["identity.unknown_key"], decision
        time.sleep(0.2)  # the PDP refreshes the provider's jwks_uri every second
        decision = decide(server, after)
    assert decision["decision"] == "allow", (rotation, decision)
    assert decide(server, before)["decision"] == "allow"  # the old key is still published


def test_a_token_from_another_issuer_is_refused(pdp: tuple[ServerProcess, Provider],
                                                provider_factory: Callable[[], Provider]) -> None:
    server, _ = pdp
    stranger = provider_factory()
    decision = decide(server, stranger.token())
    assert decision["decision"] == "deny"
    assert decision["reason_codes"] == ["identity.untrusted_issuer"]
