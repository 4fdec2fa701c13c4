"""The broker's rules of issuance, as pure functions: never wider, never longer, whatever
is asked (hypothesis), and an actor of another trust domain is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.broker.issuance import BrokerRules, ExchangeAsk, Plan, Refusal, plan_issuance
from pdp.identity.model import VerifiedIdentity
from tests.conftest import examples

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
BROKER = "urn:pdp:broker"
RULES = BrokerRules(issuer=BROKER, audiences=frozenset({"pdp", "svc"}), max_lifetime_s=900,
                    max_lifetime_by_issuer={"spiffe://example.org": 600},
                    max_delegation_depth=3)
SCOPES = st.frozensets(st.sampled_from(["a", "b", "c", "d"]), max_size=4)


def _identity(who: str, *, scopes: frozenset[str] = frozenset(), ttl_s: int = 3600,
              issuer: str = "spiffe://example.org", depth: int = 0,
              actor: str | None = None) -> VerifiedIdentity:
    td = who.removeprefix("spiffe://").split("/", 1)[0]
    return VerifiedIdentity(principal_id=who, kind="jwt", issuer=issuer, trust_domain=td,
                            path="/" + who.removeprefix("spiffe://").split("/", 1)[1],
                            scopes=scopes, issued_at=NOW - timedelta(seconds=10),
                            expires_at=NOW + timedelta(seconds=ttl_s), chain_depth=depth,
                            actor=actor)


def _broker_claims(task: str = "T-1", aud: str = "svc") -> dict:
    return {"task": {"id": task, "purpose": "p"}, "aud": aud}


@settings(max_examples=examples(300), deadline=None)
@given(held=SCOPES, asked=st.one_of(st.none(), SCOPES),
       ttl=st.integers(min_value=1, max_value=5000),
       lifetime=st.one_of(st.none(), st.integers(min_value=1, max_value=5000)),
       actor_ttl=st.one_of(st.none(), st.integers(min_value=1, max_value=5000)))
def test_an_issued_credential_is_never_wider_or_longer_than_what_it_came_from(
        held, asked, ttl, lifetime, actor_ttl) -> None:
    subject = _identity("spiffe://example.org/agents/a", scopes=held, ttl_s=ttl, issuer=BROKER)
    actor = (_identity("spiffe://example.org/agents/b", ttl_s=actor_ttl)
             if actor_ttl is not None else None)
    plan = plan_issuance(RULES, subject=subject, subject_claims=_broker_claims(aud="pdp"),
                         actor=actor, ask=ExchangeAsk("svc", asked, lifetime, None, None),
                         now=NOW)
    # 600: max_lifetime_by_issuer of the subject's trust domain
    caps = [900, 600, ttl] + ([actor_ttl] if actor_ttl is not None else [])
    if isinstance(plan, Plan):
        assert plan.scopes <= held
        assert plan.lifetime_s <= min(caps)
        assert asked is None or plan.scopes == asked  # never silently narrowed
        assert lifetime is None or plan.lifetime_s == lifetime
    else:
        assert (asked is not None and not asked <= held) or (
            lifetime is not None and lifetime > min(caps))


def test_an_actor_of_another_trust_domain_is_refused() -> None:
    subject = _identity("spiffe://example.org/agents/a", scopes=frozenset({"a"}), issuer=BROKER)
    actor = _identity("spiffe://partner.example/agents/x")
    plan = plan_issuance(RULES, subject=subject, subject_claims=_broker_claims(), actor=actor,
                         ask=ExchangeAsk("svc", frozenset({"a"}), None, None, None), now=NOW)
    assert isinstance(plan, Refusal) and plan.code == "broker.foreign_actor"


def test_the_issuer_maximum_of_the_subjects_trust_domain_applies() -> None:
    subject = _identity("spiffe://example.org/agents/a")
    plan = plan_issuance(RULES, subject=subject, subject_claims={}, actor=None,
                         ask=ExchangeAsk("svc", None, None, "T", "purpose"), now=NOW)
    assert isinstance(plan, Plan) and plan.lifetime_s == 600


@pytest.mark.parametrize("depth, code", [(2, None), (3, "broker.delegation_depth")])
def test_the_delegation_depth_is_capped(depth: int, code: str | None) -> None:
    subject = _identity("spiffe://example.org/agents/a", issuer=BROKER, depth=depth,
                        actor="spiffe://example.org/agents/c")
    actor = _identity("spiffe://example.org/agents/b")
    plan = plan_issuance(RULES, subject=subject,
                         subject_claims={**_broker_claims(),
                                         "act": {"sub": "spiffe://example.org/agents/c"}},
                         actor=actor, ask=ExchangeAsk("svc", None, None, None, None), now=NOW)
    if code is None:
        assert isinstance(plan, Plan)
        assert plan.act == {"sub": "spiffe://example.org/agents/b",
                            "act": {"sub": "spiffe://example.org/agents/c"}}
        assert plan.identity.actor_chain == ("spiffe://example.org/agents/c",)
    else:
        assert isinstance(plan, Refusal) and plan.code == code
