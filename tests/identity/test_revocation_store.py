"""context.revocations: the entries, their matching, the in-memory store, the verifier's view."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from context.revocations import (
    InMemoryRevocationStore,
    InvalidRevocation,
    RevocationEntry,
    RevocationIndex,
    new_revocation,
    normalize_serial,
)
from pdp.identity.errors import Revoked
from pdp.identity.model import BearerToken, VerifiedIdentity
from pdp.identity.revocation import StoreRevocationCheck

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
SVID = VerifiedIdentity(
    principal_id="spiffe://example.org/agents/reporter", kind="jwt-svid",
    issuer="spiffe://example.org", trust_domain="example.org", path="/agents/reporter",
    issued_at=NOW - timedelta(minutes=1), expires_at=NOW + timedelta(minutes=4), jti="j-1")
CERT = VerifiedIdentity(
    principal_id="spiffe://example.org/services/etl", kind="x509-svid",
    issuer="O=example.org intermediate", trust_domain="example.org", path="/services/etl",
    issued_at=NOW - timedelta(hours=1), serial="1fa0")
ACCESS = VerifiedIdentity(principal_id="billing-app", kind="jwt", issuer="https://idp.example",
                          issued_at=NOW - timedelta(minutes=2), jti="at-9")


def match(entry: RevocationEntry, identity: VerifiedIdentity, now: datetime = NOW) -> bool:
    return RevocationIndex([entry]).match(identity, now) is not None


@pytest.mark.parametrize("entry, identity, expected", [
    (new_revocation("jti", "j-1"), SVID, True),
    (new_revocation("jti", "j-2"), SVID, False),
    (new_revocation("jti", "at-9", issuer="https://idp.example"), ACCESS, True),
    (new_revocation("jti", "at-9", issuer="https://other.example"), ACCESS, False),
    (new_revocation("cert", "1F:A0", issuer="O=example.org intermediate"), CERT, True),
    (new_revocation("cert", "0x1fa0", issuer="O=another CA"), CERT, False),
    (new_revocation("spiffe_id", "spiffe://example.org/agents/reporter"), SVID, True),
    (new_revocation("spiffe_id", "spiffe://example.org/agents/reporter2"), SVID, False),
    (new_revocation("spiffe_prefix", "spiffe://example.org/agents/*"), SVID, True),
    (new_revocation("spiffe_prefix", "spiffe://example.org/agents/"), SVID, True),
    (new_revocation("spiffe_prefix", "spiffe://example.org"), CERT, True),
    (new_revocation("spiffe_prefix", "spiffe://example.org/age"), SVID, False),
    (new_revocation("issued_before", "example.org", before=NOW), SVID, True),
    (new_revocation("issued_before", "spiffe://example.org", before=NOW), SVID, True),
    (new_revocation("issued_before", "example.org", before=NOW - timedelta(hours=2)), SVID,
     False),
    (new_revocation("issued_before", "O=example.org intermediate", before=NOW), CERT, True),
    (new_revocation("issued_before", "https://idp.example", before=NOW), ACCESS, True),
    (new_revocation("issued_before", "https://idp.example", before=NOW), SVID, False),
])
def test_each_kind_refuses_exactly_what_it_names(entry: RevocationEntry,
                                                 identity: VerifiedIdentity,
                                                 expected: bool) -> None:
    assert match(entry, identity) is expected


def test_a_revoked_workload_may_not_act_nor_appear_earlier_in_a_chain() -> None:
    entry = new_revocation("spiffe_id", "spiffe://example.org/gateway")
    acting = replace(SVID, actor="spiffe://example.org/gateway", chain_depth=1)
    earlier = replace(SVID, actor="spiffe://example.org/frontend", chain_depth=2,
                      actor_chain=("spiffe://example.org/gateway",))
    assert match(entry, acting) and match(entry, earlier)


def test_without_an_issue_time_issued_before_fails_closed() -> None:
    entry = new_revocation("issued_before", "example.org", before=NOW)
    assert match(entry, replace(SVID, issued_at=None, not_before=None))


def test_an_entry_stops_applying_at_its_expiry() -> None:
    entry = new_revocation("jti", "j-1", expires_at=NOW + timedelta(minutes=5))
    assert match(entry, SVID, NOW) and not match(entry, SVID, NOW + timedelta(minutes=5))


@pytest.mark.parametrize("kind, value, kw", [
    ("jti", "", {}), ("jti", "x" * 3000, {}), ("cert", "1f", {}), ("cert", "xyz", {"issuer": "O=a"}),
    ("spiffe_id", "example.org/x", {}), ("spiffe_id", "spiffe://example.org", {}),
    ("issued_before", "example.org", {}),
    ("issued_before", "example.org", {"before": datetime(2026, 1, 1)}),
    ("jti", "x", {"before": NOW}), ("spiffe_id", "spiffe://example.org/x", {"issuer": "O=a"}),
    ("everything", "x", {}),
])
def test_malformed_entries_are_refused(kind: str, value: str, kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidRevocation):
        new_revocation(kind, value, **kw)


def test_serials_are_normalized_and_ids_follow_the_content() -> None:
    assert normalize_serial("00:1F:A0") == normalize_serial("0x1fa0") == "1fa0"
    a = new_revocation("cert", "00:1F:A0", issuer="O=x", reason="one")
    b = new_revocation("cert", "1fa0", issuer="O=x", reason="two")
    assert a.id == b.id and a.id.startswith("rev-")


def test_entries_round_trip_through_json() -> None:
    entry = new_revocation("issued_before", "example.org", before=NOW, reason="key exposed",
                           created_by="spiffe://example.org/ops/sre-console", created_at=NOW,
                           expires_at=NOW + timedelta(days=1))
    assert RevocationEntry.from_json(entry.to_json()) == entry
    with pytest.raises(InvalidRevocation):
        RevocationEntry.from_json({**entry.to_json(), "id": "rev-0000000000000000"})


def test_the_in_memory_store_is_idempotent_and_versioned() -> None:
    store = InMemoryRevocationStore()
    entry = new_revocation("jti", "j-1")
    assert store.add(entry) == (entry, True)
    assert store.add(new_revocation("jti", "j-1", reason="again")) == (entry, False)
    assert store.version == 1 and store.list() == [entry]
    assert store.check(SVID, NOW) == entry
    assert store.remove(entry.id) == entry and store.remove(entry.id) is None
    assert store.version == 2 and store.check(SVID, NOW) is None


def test_the_verifier_consults_the_store_on_every_cache_hit(tk: Any) -> None:
    store = InMemoryRevocationStore()
    verifier = tk.verifier(deny_list=StoreRevocationCheck(store))
    token = BearerToken(tk.svid())
    verifier.verify(token, tk.now)
    store.add(new_revocation("jti", "jti-1", reason="leaked"))
    with pytest.raises(Revoked) as refused:
        verifier.verify(token, tk.now)
    assert refused.value.reason == "revoked-jti" and "leaked" in refused.value.message
    store.remove(store.list()[0].id)
    assert verifier.verify(token, tk.now).jti == "jti-1"
