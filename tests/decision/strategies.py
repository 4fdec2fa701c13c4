"""Hypothesis strategies for requests over the example bundle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from context.model import LiveSnapshot
from pdp.decision.model import ResourceRef
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10

KNOWN = ["spiffe://example.org/agents/reporter", "spiffe://example.org/services/etl",
         "spiffe://example.org/services/admin-console", "spiffe://example.org/oncall/responder"]
GROUPS = ["analytics", "pipelines", "data-admins", "agents", "incident-responders", "other"]
SCOPES = ["billing:call", "inventory:call", "datasets:write"]

principals = st.builds(
    lambda pid, groups, scopes, kind: (pid, frozenset(groups), frozenset(scopes), kind),
    st.one_of(st.sampled_from(KNOWN),
              st.from_regex(r"spiffe://(example\.org|partner\.example)/[a-z]{1,8}(/[a-z]{1,8})?",
                            fullmatch=True),
              st.sampled_from(["client-1", "reporting-client"])),
    st.sets(st.sampled_from(GROUPS), max_size=3),
    st.sets(st.sampled_from(SCOPES), max_size=2),
    st.sampled_from(["jwt-svid", "x509-svid", "jwt"]),
)
static_resources = st.sampled_from([
    ("App::Dataset", "sales-daily"), ("App::Dataset", "customer-pii"),
    ("App::Dataset", "ledger"), ("App::Api", "billing"), ("App::Api", "inventory"),
    ("App::Dataset", "unknown-dataset")])
described_datasets = st.builds(
    lambda i, sensitive, domain: ResourceRef(
        type="App::Dataset", id=f"new-{i}", attrs={"sensitive": sensitive},
        parents=(("App::DataDomain", domain),) if domain else ()),
    st.integers(0, 3), st.booleans(), st.sampled_from(["analytics", "finance", None]))
resources = st.one_of(static_resources.map(lambda t: ResourceRef(*t)), described_datasets)
lives = st.builds(
    lambda incident, risk, hours, minutes: LiveSnapshot(
        now=MONDAY_10 + timedelta(minutes=minutes), incident=incident, risk_level=risk,
        business_hours=hours),
    st.booleans(), st.integers(0, 3), st.booleans(), st.integers(0, 600))
contexts = st.fixed_dictionaries({}, optional={"purpose": st.text(max_size=5),
                                               "method": st.sampled_from(["GET", "POST"])})


def identity_of(principal: tuple[str, frozenset[str], frozenset[str], str],
                age_s: int) -> VerifiedIdentity:
    pid, groups, scopes, kind = principal
    spiffe = pid.startswith("spiffe://")
    td, _, path = pid.removeprefix("spiffe://").partition("/") if spiffe else ("", "", "")
    issued = MONDAY_10 - timedelta(seconds=age_s)
    return VerifiedIdentity(principal_id=pid, kind=kind, issuer="iss", trust_domain=td,
                            path=f"/{path}" if spiffe else "", scopes=scopes, groups=groups,
                            issued_at=issued, expires_at=issued + timedelta(hours=1))



actions = st.sampled_from(["read", "write", "delete", "export", "call"])


def contexts_for(action: str, context: dict[str, Any]) -> dict[str, Any]:
    """Keep only the context keys the action's schema declares."""
    keep = "method" if action == "call" else "purpose"
    return {k: v for k, v in context.items() if k == keep}
