"""RFC 8693 delegation in decide(): the subject and the acting workload must both be allowed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from context.calendar import BusinessCalendar
from context.memory import InMemoryContext
from pdp.authoring.policytests import run_suites
from pdp.decision.decide import decide
from pdp.decision.delegation import actor_identity
from pdp.decision.model import Decision, ResourceRef
from pdp.engine.bundle import Bundle
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10

REPORTER = "spiffe://example.org/agents/reporter"
ETL = "spiffe://example.org/services/etl"
UNKNOWN = "spiffe://example.org/services/unknown"
SATURDAY_10 = MONDAY_10 + timedelta(days=5)


def identity(subject: str, actor: str | None = None, **kw: Any) -> VerifiedIdentity:
    spiffe_path = subject.removeprefix("spiffe://example.org")
    return VerifiedIdentity(
        principal_id=subject, kind="jwt-svid", issuer="spiffe://example.org",
        trust_domain="example.org", path=spiffe_path,
        issued_at=MONDAY_10 - timedelta(seconds=30), expires_at=MONDAY_10 + timedelta(minutes=4),
        actor=actor, chain_depth=1 if actor else 0, **kw)


def ask(bundle: Bundle, who: VerifiedIdentity, action: str = "read",
        resource: ResourceRef = ResourceRef("App::Dataset", "sales-daily"),
        now: Any = MONDAY_10) -> Decision:
    live = InMemoryContext(calendar=BusinessCalendar()).snapshot(who.principal_id, now)
    return decide(bundle, identity=who, action=action, resource=resource, context={},
                  live=live, now=now)


def test_allowed_only_when_subject_and_actor_are_both_allowed(example_bundle: Bundle) -> None:
    d = ask(example_bundle, identity(REPORTER, actor=ETL))
    assert d.decision == "allow"
    assert [r.policy for r in d.reasons] == ["dataset.analytics.read",
                                             "dataset.pipelines.read-write"]
    assert f"The acting workload {ETL} is allowed too" in d.explanation


def test_a_refused_actor_is_named_in_the_explanation(example_bundle: Bundle) -> None:
    d = ask(example_bundle, identity(REPORTER, actor=UNKNOWN))
    assert d.decision == "deny" and d.reason_codes == ("policy.no_permit",)
    assert d.explanation.startswith(
        f"Denied: the acting workload {UNKNOWN} (acting for {REPORTER}) is not permitted.")
    assert d.principal == f'Pdp::Workload::"{REPORTER}"'  # the decision stays the subject's


def test_the_actor_does_not_inherit_what_the_subject_may_do(example_bundle: Bundle) -> None:
    # The pipeline may write; the reporting agent acting for it may not.
    d = ask(example_bundle, identity(ETL, actor=REPORTER), action="write",
            resource=ResourceRef("App::Dataset", "customer-pii"))
    assert d.decision == "deny" and REPORTER in d.explanation


def test_the_actor_does_not_inherit_the_subjects_scopes(example_bundle: Bundle) -> None:
    subject = replace(identity(ETL, actor="spiffe://example.org/services/admin-console"),
                      scopes=frozenset({"billing:call"}))
    alone = ask(example_bundle, replace(subject, actor=None, chain_depth=0), action="call",
                resource=ResourceRef("App::Api", "billing"))
    delegated = ask(example_bundle, subject, action="call",
                    resource=ResourceRef("App::Api", "billing"))
    assert alone.decision == "allow"
    assert delegated.decision == "deny" and "admin-console" in delegated.explanation


def test_a_forbid_on_the_actor_denies_with_that_policy(example_bundle: Bundle) -> None:
    d = ask(example_bundle, identity(ETL, actor=REPORTER), now=SATURDAY_10)
    assert d.decision == "deny" and d.reason_codes == ("policy.forbid",)
    assert [r.policy for r in d.reasons] == ["guard.agents.business-hours"]
    assert REPORTER in d.explanation


def test_a_refused_subject_is_denied_without_asking_about_the_actor(
        example_bundle: Bundle) -> None:
    d = ask(example_bundle, identity(UNKNOWN, actor=ETL))
    assert d.decision == "deny" and "acting workload" not in d.explanation
    assert UNKNOWN in d.explanation


def test_earlier_actors_never_grant(example_bundle: Bundle) -> None:
    who = replace(identity(REPORTER, actor=UNKNOWN), chain_depth=2, actor_chain=(ETL,))
    assert ask(example_bundle, who).decision == "deny"


def test_the_actor_entity_is_built_from_its_own_spiffe_id() -> None:
    actor = actor_identity(replace(identity(REPORTER, actor="spiffe://partner.example/svc/x"),
                                   actor_issuer="https://sts.example", scopes=frozenset({"s"}),
                                   groups=frozenset({"g"})))
    assert (actor.principal_id, actor.trust_domain, actor.path) == (
        "spiffe://partner.example/svc/x", "partner.example", "/svc/x")
    assert actor.issuer == "https://sts.example" and actor.kind == "jwt-svid"
    assert actor.scopes == frozenset() and actor.groups == frozenset()


def test_a_foreign_actor_is_stopped_by_the_trust_domain_guard(example_bundle: Bundle) -> None:
    d = ask(example_bundle, identity(ETL, actor="spiffe://partner.example/services/etl"))
    assert d.decision == "deny" and [r.policy for r in d.reasons] == ["guard.trust-domain"]


def test_context_credential_reports_the_delegation(example_bundle: Bundle) -> None:
    from pdp.decision.decide import credential_facts

    facts = credential_facts(replace(identity(REPORTER, actor=ETL), chain_depth=2,
                                     actor_chain=(UNKNOWN,)), MONDAY_10)
    assert (facts["delegated"], facts["actor"], facts["chain_depth"]) == (True, ETL, 2)


def test_the_example_bundle_delegation_suite_passes(example_bundle: Bundle) -> None:
    report = run_suites(example_bundle)
    delegation = [r for r in report.results if r.suite == "tests/delegation.yaml"]
    assert len(delegation) >= 6
    assert all(r.passed for r in delegation), [r.problems for r in delegation if not r.passed]


# -- the verifier's side: the actor's form and the depth cap --------------------------------

@pytest.fixture
def verifier(tmp_path: Any):
    from pdp.identity.verifier import IdentityVerifier
    from tests.identity.workloads import TrustDomain, settings_for

    td = TrustDomain("example.org")
    built = IdentityVerifier.from_settings(settings_for(tmp_path, td, delegation_max_depth=2))
    return built, td


def test_a_spiffe_actor_of_an_untrusted_domain_is_refused(verifier: Any) -> None:
    from datetime import UTC, datetime

    from pdp.identity.errors import UntrustedIssuer
    from pdp.identity.model import BearerToken

    built, td = verifier
    token = td.jwt_svid("/agents/reporter", act={"sub": "spiffe://elsewhere.example/x"})
    with pytest.raises(UntrustedIssuer) as refused:
        built.verify(BearerToken(token), datetime.now(UTC))
    assert refused.value.reason == "untrusted-actor"


def test_an_opaque_actor_needs_a_configured_issuer_in_act_iss(verifier: Any) -> None:
    from datetime import UTC, datetime

    from pdp.identity.errors import UntrustedIssuer
    from pdp.identity.model import BearerToken

    built, td = verifier
    with pytest.raises(UntrustedIssuer):
        built.verify(BearerToken(td.jwt_svid("/agents/reporter", act={"sub": "robot-7"})),
                     datetime.now(UTC))


def test_the_depth_cap_is_configurable(verifier: Any) -> None:
    from datetime import UTC, datetime

    from pdp.identity.errors import InvalidClaim
    from pdp.identity.model import BearerToken

    built, td = verifier
    two = {"sub": "spiffe://example.org/a", "act": {"sub": "spiffe://example.org/b"}}
    three = {"sub": "spiffe://example.org/a", "act": two}
    now = datetime.now(UTC)
    assert built.verify(BearerToken(td.jwt_svid("/x", act=two)), now).chain_depth == 2
    with pytest.raises(InvalidClaim):
        built.verify(BearerToken(td.jwt_svid("/x", act=three)), now)
