"""The Python SDK's own JWT-SVID from the Workload API (``pdp_client.workload_api``).

Cached, refreshed before expiry without making a caller wait, dropped when the trust
domain's JWT keys rotate, and failing closed (a deny with ``pdp.credential_unavailable``,
no request sent) when the Workload API is not there.
"""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from pdp_client import PDP_CREDENTIAL_UNAVAILABLE, CredentialUnavailable, PDPClient
from pdp_client.workload_api import WorkloadApiToken

AUDIENCE = "spiffe://example.org/pdp"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_the_token_names_the_audience_and_is_cached(workload_api):
    server = workload_api("/services/etl")
    with WorkloadApiToken(AUDIENCE, socket=server.address) as source:
        first = source()
        assert source() == first and source.fetches == 1 and server.jwt_svids_issued == 1
    assert claims(first)["aud"] == AUDIENCE
    assert claims(first)["sub"] == "spiffe://example.org/services/etl"


def test_refreshed_in_the_background_after_half_its_lifetime(workload_api):
    server = workload_api("/services/etl", jwt_ttl_s=100)
    clock = Clock()
    with WorkloadApiToken(AUDIENCE, socket=server.address, clock=clock) as source:
        first = source()
        clock.now += 49
        assert source() == first and source.fetches == 1
        clock.now += 2  # past half: the cached token is still returned, a refresh starts
        assert source() == first
        wait_for(lambda: source.fetches == 2 and not source._refreshing)
        time.sleep(1.1)  # a new iat: the refreshed token differs
        source.invalidate()
        assert source() != first


def test_a_rotated_jwt_key_drops_the_cached_token(workload_api, authority):
    server = workload_api("/services/etl")
    with WorkloadApiToken(AUDIENCE, socket=server.address) as source:
        old = source()
        wait_for(lambda: source._bundles_seen >= 1)
        assert kid(old) == authority.generations[0].kid
        authority.rotate()
        wait_for(lambda: source._cached is None)
        new = source()
    assert kid(new) == authority.signer.kid != kid(old)


def test_no_socket_is_a_fail_closed_deny_and_nothing_is_sent(socket_dir):
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(500))
    source = WorkloadApiToken(AUDIENCE, socket=f"unix://{socket_dir}/missing.sock")
    with pytest.raises(CredentialUnavailable):
        source()
    with PDPClient("http://pdp", pep_token=source, transport=transport) as client:
        decision = client.authorize(token="caller", action="read",
                                    resource=("App::Dataset", "sales-daily"))
    assert decision.decision == "deny" and decision.made_by_sdk
    assert decision.reason_codes == (PDP_CREDENTIAL_UNAVAILABLE,)
    assert sent == []


def test_an_agent_gone_mid_run_keeps_the_token_until_it_expires_then_fails_closed(workload_api):
    server = workload_api("/services/etl", jwt_ttl_s=100)
    clock = Clock()
    with WorkloadApiToken(AUDIENCE, socket=server.address, clock=clock, timeout_s=1) as source:
        token = source()
        server.stop()
        clock.now += 60  # refresh due, and it fails in the background: the token is kept
        assert source() == token
        wait_for(lambda: not source._refreshing)
        clock.now += 41  # expired: nothing to send
        with pytest.raises(CredentialUnavailable, match="Workload API"):
            source()


def test_a_jwt_svid_that_is_not_a_jwt_is_unavailable_not_sent(workload_api):
    server = workload_api("/services/etl")
    server.send_garbage(True)
    with WorkloadApiToken(AUDIENCE, socket=server.address) as source:
        with pytest.raises(CredentialUnavailable):
            source()
        server.send_garbage(False)
        assert claims(source())["sub"] == "spiffe://example.org/services/etl"
