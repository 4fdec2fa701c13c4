"""The identity inventory computed from records: counts, first/last seen, stale and long-lived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pdp.audit.auditing.inventory import (
    credential_lifetime_s,
    identity_inventory,
    max_lifetimes_from_settings,
)
from pdp.config import load_settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def record(principal: str | None, *, days_ago: float, decision: str = "allow",
           lifetime_s: int | None = 300, issuer: str = "https://idp.example.com",
           kind: str = "jwt", trust_domain: str = "", **extra) -> dict:
    at = NOW - timedelta(days=days_ago)
    cred = {"issuer": issuer, "kind": kind, "trust_domain": trust_domain,
            "issued_at": at.isoformat() if lifetime_s is not None else None,
            "expires_at": (at + timedelta(seconds=lifetime_s or 0)).isoformat()}
    return {"decision_id": f"{principal}-{days_ago}", "kind": "decision", "decision": decision,
            "timestamp": at.isoformat().replace("+00:00", "Z"), "principal": principal,
            "credential": cred, **extra}


def test_counts_and_first_and_last_seen_per_principal_in_any_order() -> None:
    records = [record("client-1", days_ago=1), record("client-1", days_ago=5, decision="deny"),
               record("client-1", days_ago=3, kind="jwt", issuer="https://other"),
               record(None, days_ago=1),  # a refused credential names nobody
               {"decision_id": "e", "kind": "admin", "timestamp": "2026-06-01T00:00:00Z",
                "principal": "client-1", "event": "audit.query"}]
    [entry] = identity_inventory(records, now=NOW)
    assert entry.requests == 3 and entry.denies == 1
    assert entry.first_seen.startswith("2026-05-27") and entry.last_seen.startswith("2026-05-31")
    assert entry.issuers == {"https://idp.example.com", "https://other"}
    assert entry.flags == []


def test_a_principal_not_seen_for_stale_days_is_stale() -> None:
    records = [record("old", days_ago=120), record("recent", days_ago=2)]
    flags = {e.principal: e.flags for e in identity_inventory(records, now=NOW)}
    assert flags == {"old": ["stale"], "recent": []}
    flags = {e.principal: e.flags for e in identity_inventory(records, now=NOW, stale_days=1)}
    assert flags == {"old": ["stale"], "recent": ["stale"]}


def test_long_lived_is_over_the_issuers_configured_maximum_or_over_long_lived_s() -> None:
    records = [record("a", days_ago=1, lifetime_s=1200),
               record("b", days_ago=1, lifetime_s=1200, issuer="spiffe://example.org",
                      trust_domain="example.org", kind="jwt-svid"),
               record("c", days_ago=1, lifetime_s=7200, issuer="https://unconfigured")]
    entries = {e.principal: e for e in identity_inventory(
        records, now=NOW, max_lifetimes={"https://idp.example.com": 900, "example.org": 3600})}
    assert entries["a"].long_lived and "configured maximum of 900 s" in entries["a"].long_lived_because
    assert not entries["b"].long_lived
    assert entries["c"].long_lived and "over 3600 s" in entries["c"].long_lived_because
    assert entries["c"].longest_lifetime_s == 7200


def test_an_unknown_lifetime_is_not_guessed() -> None:
    assert credential_lifetime_s({"expires_at": NOW.isoformat()}) is None
    [entry] = identity_inventory([record("x", days_ago=1, lifetime_s=None)], now=NOW)
    assert entry.longest_lifetime_s is None and not entry.long_lived


def test_configured_maximum_lifetimes_are_read_by_issuer_and_trust_domain(tmp_path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    settings = load_settings(None, issuers=[{"name": "idp", "issuer": "https://idp",
                                             "jwks_file": jwks, "max_lifetime_s": 900}],
                             trust_domains=[{"name": "example.org", "bundle_file": jwks,
                                             "max_lifetime_s": 600}])
    assert max_lifetimes_from_settings(settings) == {
        "https://idp": 900, "example.org": 600, "spiffe://example.org": 600}
