"""The per-request shortcuts of a small bundle against raw Cedar, on one warm bundle.

A request finds its policy slice by its scope (``PolicyIndex.scope_slice``: the
principal's and resource's uids, the parents the request gives them, the
action) and its entity handle by the principal and the described resource's
JSON (``PrincipalEntityCache.with_described``). Each step below reuses what the
step before warmed and changes exactly one thing a key must hold — the
principal's groups, the resource's parents, the resource's attributes — so that
a key missing it hands Cedar the previous request's slice or entities and the
answer differs from raw ``cedarpy.is_authorized`` on the full set. The
sequence runs forwards and backwards (each order warms the caches differently).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from context.model import LiveSnapshot
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.engine.bundle import Bundle
from pdp.identity.model import VerifiedIdentity
from tests.cedar_reference import determining_ids, raw_decision
from tests.conftest import MONDAY_10

SCHEMA = """namespace App {
  entity Folder;
  entity Doc in [Folder] = { level: Long };
  action "read" appliesTo { principal: [Pdp::Workload], resource: [Doc], context: {} };
}
"""
POLICIES = """@id("by-group") @reason("Operators read everything.")
permit (principal in Pdp::Group::"ops", action == App::Action::"read", resource);
@id("by-folder") @reason("Low-level documents in the shared folder.")
permit (principal, action == App::Action::"read", resource in App::Folder::"shared")
  when { resource.level < 3 };
@id("too-high") @reason("Nothing above level 5.")
forbid (principal, action, resource) when { resource.level > 5 };
"""
SHARED = (("App::Folder", "shared"),)
# (groups, resource parents, resource attributes, expected decision).
STEPS: list[tuple[frozenset[str], tuple[tuple[str, str], ...], dict[str, Any], str]] = [
    (frozenset(), (), {"level": 1}, "deny"),
    (frozenset({"ops"}), (), {"level": 1}, "allow"),  # principal's parents in the scope key
    (frozenset(), SHARED, {"level": 1}, "allow"),  # resource's parents in the scope key
    (frozenset(), SHARED, {"level": 4}, "deny"),  # attributes in the entity key
    (frozenset({"ops"}), SHARED, {"level": 9}, "deny"),
    (frozenset({"ops"}), SHARED, {"level": "x"}, "deny"),  # off the schema: refused, not kept
    (frozenset({"ops"}), SHARED, {"level": 2}, "allow"),
]


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    (tmp_path / "schema.cedarschema").write_text(SCHEMA)
    (tmp_path / "policies.cedar").write_text(POLICIES)
    (tmp_path / "entities.json").write_text("[]")
    loaded = load_bundle(tmp_path)
    assert loaded.index is not None  # three policies are sliced
    return loaded


@pytest.mark.parametrize("order", ["forwards", "backwards"])
def test_each_request_is_raw_cedar_whatever_the_one_before_warmed(bundle: Bundle,
                                                                   order: str) -> None:
    raw_policies = cedarpy.PolicySet.from_str(POLICIES)
    live = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
    steps = STEPS if order == "forwards" else STEPS[::-1]
    for _ in range(2):  # and again, every cache warm
        for groups, parents, attrs, expected in steps:
            identity = VerifiedIdentity(
                principal_id="spiffe://example.org/w", kind="jwt-svid",
                issuer="spiffe://example.org", trust_domain="example.org", path="/w",
                groups=groups, issued_at=MONDAY_10 - timedelta(seconds=5),
                expires_at=MONDAY_10 + timedelta(minutes=5))
            resource = ResourceRef("App::Doc", "d1", attrs=attrs, parents=parents)
            ours = decide(bundle, identity=identity, action="read", resource=resource,
                          context={}, live=live, now=MONDAY_10)
            raw = raw_decision(SCHEMA, raw_policies, [], identity=identity,
                               action=("App::Action", "read"), resource=resource, context={},
                               live=live, now=MONDAY_10, declares=frozenset())
            step = f"{sorted(groups)} {parents} {attrs}: {ours.explanation}"
            assert ours.decision == expected, step
            if raw.decision == cedarpy.Decision.NoDecision or raw.diagnostics.errors:
                assert ours.reason_codes[0] == "request.invalid", step
                continue
            assert ours.decision == ("allow" if raw.allowed else "deny"), step
            assert sorted(r.policy for r in ours.reasons) == determining_ids(raw), step


def test_a_shape_with_many_determining_policies_is_found_schema_free(tmp_path: Path) -> None:
    """Cedar lists the determining policies of one answer in hash order, which differs
    between calls; the shape check compares them as sets, or such a shape would be
    judged to need the schema and pay for it on every request."""
    (tmp_path / "schema.cedarschema").write_text(SCHEMA)
    (tmp_path / "policies.cedar").write_text("\n".join(
        f'@id("p{i}") @reason("Allowed {i}.")\n'
        f'permit (principal, action == App::Action::"read", resource);' for i in range(8)))
    (tmp_path / "entities.json").write_text("[]")
    bundle = load_bundle(tmp_path)
    live = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
    identity = VerifiedIdentity(principal_id="spiffe://example.org/w", kind="jwt-svid",
                                issuer="spiffe://example.org", trust_domain="example.org",
                                path="/w")
    decision = decide(bundle, identity=identity, action="read",
                      resource=ResourceRef("App::Doc", "d1", attrs={"level": 1}), context={},
                      live=live, now=MONDAY_10)
    assert sorted(r.policy for r in decision.reasons) == [f"p{i}" for i in range(8)]
    key = bundle.shapes.key(("App::Action", "read"), "Pdp::Workload", "App::Doc", {})
    assert bundle.shapes.verdict(key) is True
