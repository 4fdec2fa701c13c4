"""The decision record's identity parts (``credential``, ``principal_entity``) are rendered
once per verified identity and bundle (``pdp.decision.identity_parts.IdentityParts``, one per
``DecisionService``): attacked here with alternating identities, a reload that changes a
workload's parents, records that must stay each their own, two services that must not
share a memo, and the credential hash the record keeps."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.decision.identity_parts import (
    IdentityParts,
    credential_facts_record,
    principal_entity_record,
)
from pdp.decision.model import AuthorizeInput, Decision, ResourceRef
from pdp.decision.record import decision_record
from pdp.identity.model import BearerToken, VerifiedIdentity
from tests.conftest import MONDAY_10

REPORTER = "spiffe://example.org/agents/reporter"
ETL = "spiffe://example.org/services/etl"
REQUEST = AuthorizeInput(credential=BearerToken("a.b.c"), action="read",
                         resource=ResourceRef("App::Dataset", "sales-daily"))


def identity(principal: str, n: int = 0) -> VerifiedIdentity:
    return VerifiedIdentity(
        principal_id=principal, kind="jwt-svid", issuer="https://dev", trust_domain="example.org",
        path=principal.removeprefix("spiffe://example.org"), scopes=frozenset({f"s{n}", "b"}),
        groups=frozenset({f"g{n}", "a"}), issued_at=MONDAY_10 - timedelta(seconds=n),
        expires_at=MONDAY_10 + timedelta(minutes=5), jti=f"j{n}",
        credential_sha256=f"{n:064x}" if n % 2 else "")


def decision_for(who: VerifiedIdentity) -> Decision:
    return Decision(decision_id="d", decision="allow", timestamp=MONDAY_10,
                    principal=f'Pdp::Workload::"{who.principal_id}"', action="read",
                    resource='App::Dataset::"sales-daily"', reasons=(), reason_codes=(),
                    explanation="", errors=(), version=None, live=None,
                    valid_until=MONDAY_10, identity=who)


def parts(record: dict[str, Any]) -> bytes:
    return orjson.dumps([record["credential"], record["principal_entity"]])


@settings(max_examples=40, deadline=None)
@given(order=st.lists(st.tuples(st.sampled_from([REPORTER, ETL]), st.integers(0, 3),
                                st.sampled_from([None, "f" * 64])), min_size=1, max_size=12))
def test_each_record_holds_its_own_identitys_parts_whatever_came_before(
        order, example_bundle) -> None:
    made: dict[tuple[str, int], VerifiedIdentity] = {}
    memo = IdentityParts()
    for principal, n, sha in order:
        who = made.setdefault((principal, n), identity(principal, n))  # shared, as the cache does
        record = decision_record(decision_for(who), REQUEST, latency_us=1,
                                 credential_sha256=sha, bundle=example_bundle, parts=memo)
        assert parts(record) == orjson.dumps([
            credential_facts_record(who, sha), principal_entity_record(who, example_bundle)])


def test_a_reload_that_changes_a_workloads_parents_shows_in_its_next_record(
        example_bundle) -> None:
    who = identity(REPORTER)
    memo = IdentityParts()
    before = decision_record(decision_for(who), REQUEST, latency_us=1, bundle=example_bundle,
                             parts=memo)
    reloaded = replace(example_bundle, workload_parents={
        REPORTER: ({"type": "Pdp::Group", "id": "moved"},)})
    after = decision_record(decision_for(who), REQUEST, latency_us=1, bundle=reloaded,
                            parts=memo)
    assert {"type": "Pdp::Group", "id": "moved"} not in before["principal_entity"]["parents"]
    assert {"type": "Pdp::Group", "id": "moved"} in after["principal_entity"]["parents"]


def test_the_record_keeps_the_verified_credentials_hash_else_the_presented_tokens(
        example_bundle) -> None:
    """The service hashes the presented token only when the identity carries no hash of
    its own; either way the record holds the hash it held before."""
    from pdp.decision.service import DecisionService, _credential_sha256

    token_sha = hashlib.sha256(b"a.b.c").hexdigest()
    assert _credential_sha256(REQUEST.credential) == token_sha
    service = DecisionService.__new__(DecisionService)  # _record reads these two only
    service.redactor, service.identity_parts = None, IdentityParts()
    for who, expected in ((identity(REPORTER, 1), f"{1:064x}"), (identity(ETL, 2), token_sha)):
        record = service._record(decision_for(who), REQUEST, 0.0, example_bundle)
        assert record["credential"]["sha256"] == expected


def test_two_services_keep_memos_of_their_own(example_bundle) -> None:
    """Each service renders its own identities' parts: one service's memo never answers
    for another's (a memo shared through a class default or a module global fails here)."""
    from pdp.decision.service import DecisionService

    first, second = (DecisionService(bundles=None, verifier=None, live=None,  # type: ignore[arg-type]
                                     log=None, clock=None)  # type: ignore[arg-type]
                     for _ in range(2))
    assert first.identity_parts is not second.identity_parts
    reporter, etl = identity(REPORTER, 1), identity(ETL, 3)  # each carries its own hash
    for who, service in ((reporter, first), (etl, second), (reporter, second), (etl, first)):
        record = service._record(decision_for(who), REQUEST, 0.0, example_bundle)
        assert parts(record) == orjson.dumps([
            credential_facts_record(who, None), principal_entity_record(who, example_bundle)])
    # Each holds the last identity it rendered itself (one shared memo would hold etl twice).
    held = [service.identity_parts._facts for service in (first, second)]
    assert [h[0] if h is not None else None for h in held] == [etl, reporter]
