"""The decision cache: bounded, honours valid_until and the live-context version.

A cached allow must never outlive the PDP's ``valid_until`` (which never
passes the credential's expiry) nor an incident flip (a new context version).
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from pdp_client import AsyncPDPClient, DecisionCache, PDPClient

from context.state import Scope

pytestmark = pytest.mark.anyio

DATASET = ("App::Dataset", "sales-daily")
PII = ("App::Dataset", "customer-pii")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_a_repeated_question_is_answered_from_the_cache(pdp_transport, local_mint) -> None:
    token = local_mint()
    async with AsyncPDPClient("http://pdp", transport=pdp_transport, cache=DecisionCache()) as pdp:
        first = await pdp.authorize(token=token, action="read", resource=DATASET)
        second = await pdp.authorize(token=token, action="read", resource=DATASET)
        other = await pdp.authorize(token=token, action="read", resource=DATASET,
                                    context={"purpose": "audit"})
    assert first.allowed and not first.cached
    assert second.cached and second.decision_id == first.decision_id
    assert not other.cached
    assert len(pdp_transport.requests) == 2


async def test_a_cached_allow_expires_at_valid_until(pdp_transport, local_mint) -> None:
    clock = FakeClock()
    token = local_mint()
    async with AsyncPDPClient("http://pdp", transport=pdp_transport,
                              cache=DecisionCache(clock=clock)) as pdp:
        first = await pdp.authorize(token=token, action="read", resource=DATASET)
        ttl = (first.valid_until - first.timestamp).total_seconds()
        assert ttl > 2
        clock.t += ttl - 1
        assert (await pdp.authorize(token=token, action="read", resource=DATASET)).cached
        clock.t += 1
        after = await pdp.authorize(token=token, action="read", resource=DATASET)
    assert not after.cached and after.decision_id != first.decision_id
    assert len(pdp_transport.requests) == 2


async def test_a_cached_allow_never_outlives_the_credential(pdp_transport, local_mint) -> None:
    clock = FakeClock()
    token = local_mint(ttl_s=20)
    async with AsyncPDPClient("http://pdp", transport=pdp_transport,
                              cache=DecisionCache(clock=clock)) as pdp:
        first = await pdp.authorize(token=token, action="read", resource=DATASET)
        assert first.valid_until - first.timestamp <= timedelta(seconds=20)
        clock.t += 20
        again = await pdp.authorize(token=token, action="read", resource=DATASET)
    assert not again.cached


async def test_an_incident_flip_invalidates_cached_allows(pdp_transport, components,
                                                          local_mint) -> None:
    token = local_mint()
    async with AsyncPDPClient("http://pdp", transport=pdp_transport,
                              cache=DecisionCache()) as pdp:
        before = await pdp.authorize(token=token, action="write", resource=PII)
        assert before.allowed
        assert (await pdp.authorize(token=token, action="write", resource=PII)).cached
        components.live.declare_incident(scope=Scope.parse("global"), level=2,
                                         reason="credential leak", now=components.clock.now())
        # Any answer from the PDP now carries the new context version...
        seen = await pdp.authorize(token=token, action="read", resource=DATASET)
        assert seen.context_version != before.context_version
        # ...so the allow cached before the flip is gone: the PDP is asked again, and denies.
        after = await pdp.authorize(token=token, action="write", resource=PII)
    assert not after.cached and not after.allowed
    assert after.reasons[0].policy == "guard.incident.sensitive-writes"


def versioned(version: str, decision_id: str) -> dict:
    return {"decision": "allow", "decision_id": decision_id, "reason_codes": ["policy.permit"],
            "explanation": "ok", "reasons": [], "timestamp": "2026-01-05T10:00:00Z",
            "valid_until": "2026-01-05T10:05:00Z", "context": {"version": version}}


def test_an_answer_with_a_new_context_version_drops_every_older_entry() -> None:
    answers = iter([versioned("v1", "a1"), versioned("v2", "b1"), versioned("v2", "a2")])
    calls: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        return httpx.Response(200, json=next(answers))

    cache = DecisionCache()
    with PDPClient("http://pdp", transport=httpx.MockTransport(handler), cache=cache) as pdp:
        a = pdp.authorize(token="t", action="read", resource=("App::Dataset", "a"))
        assert pdp.authorize(token="t", action="read", resource=("App::Dataset", "a")).cached
        pdp.authorize(token="t", action="read", resource=("App::Dataset", "b"))  # sees v2
        again = pdp.authorize(token="t", action="read", resource=("App::Dataset", "a"))
    assert a.decision_id == "a1" and again.decision_id == "a2" and not again.cached
    assert len(calls) == 3 and cache.version == "v2"


def test_observe_version_invalidates_without_asking_the_pdp() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=versioned("v1", "a1"))

    cache = DecisionCache()
    with PDPClient("http://pdp", transport=httpx.MockTransport(handler), cache=cache) as pdp:
        pdp.authorize(token="t", action="read", resource=DATASET)
        assert len(cache) == 1
        cache.observe_version("v2")  # e.g. from a subscription to the context store
        assert len(cache) == 0


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    answers = iter(versioned("v1", f"d{i}") for i in range(10))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    cache = DecisionCache(maxsize=2)
    with PDPClient("http://pdp", transport=httpx.MockTransport(handler), cache=cache) as pdp:
        ask = lambda rid: pdp.authorize(token="t", action="read",  # noqa: E731
                                        resource=("App::Dataset", rid))
        ask("a"), ask("b")
        assert ask("a").cached  # a is now the most recently used
        ask("c")                # evicts b
        assert len(cache) == 2 and ask("a").cached and not ask("b").cached


def test_max_age_caps_valid_until() -> None:
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=versioned("v1", "a1"))

    with PDPClient("http://pdp", transport=httpx.MockTransport(handler),
                   cache=DecisionCache(max_age_s=5, clock=clock)) as pdp:
        pdp.authorize(token="t", action="read", resource=DATASET)
        clock.t += 4.9
        assert pdp.authorize(token="t", action="read", resource=DATASET).cached
        clock.t += 0.2
        assert not pdp.authorize(token="t", action="read", resource=DATASET).cached


def test_credentials_never_share_entries() -> None:
    key = DecisionCache.key
    from pdp_client import Resource

    r = Resource(*DATASET)
    assert key({"token": "a"}, "read", r, None) != key({"token": "b"}, "read", r, None)
    assert key({"token": "a"}, "read", r, None) != key({"x509": "a"}, "read", r, None)
    assert "secret-token" not in key({"token": "secret-token"}, "read", r, None)  # hashed


async def test_a_batch_asks_only_for_what_the_cache_does_not_have(pdp_transport,
                                                                  local_mint) -> None:
    token = local_mint()
    async with AsyncPDPClient("http://pdp", transport=pdp_transport, cache=DecisionCache()) as pdp:
        await pdp.authorize(token=token, action="read", resource=DATASET)
        decisions = await pdp.authorize_batch(token=token, items=[
            ("read", DATASET), ("read", ("App::Dataset", "ledger"))])
    assert [d.cached for d in decisions] == [True, False]
    sent = json.loads(pdp_transport.requests[-1].content)
    assert [i["resource"]["id"] for i in sent["items"]] == ["ledger"]
