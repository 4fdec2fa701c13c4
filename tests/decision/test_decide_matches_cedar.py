"""Property: decide() reaches raw Cedar's decision, with the same determining policies.

The reference is cedarpy.is_authorized on the bundle's raw text (parsed
independently, not re-keyed), the full entity list and the merged schema.
The one permitted difference is fail-closed: a forbid that errored denies.
"""

from __future__ import annotations

import json
from datetime import timedelta

import cedarpy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from context.model import LiveSnapshot
from pdp.decision.decide import cedar_context, decide, principal_entity
from pdp.decision.model import ResourceRef
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10, POLICIES

RAW_POLICIES = cedarpy.PolicySet.from_str(
    "\n".join(p.read_text() for p in sorted(POLICIES.glob("*.cedar"))))
RAW_ENTITIES = json.loads((POLICIES / "entities.json").read_text())

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


def _identity(pid: str, groups: frozenset[str], scopes: frozenset[str], kind: str,
              age_s: int) -> VerifiedIdentity:
    spiffe = pid.startswith("spiffe://")
    td, _, path = pid.removeprefix("spiffe://").partition("/") if spiffe else ("", "", "")
    issued = MONDAY_10 - timedelta(seconds=age_s)
    return VerifiedIdentity(principal_id=pid, kind=kind, issuer="iss", trust_domain=td,
                            path=f"/{path}" if spiffe else "", scopes=scopes, groups=groups,
                            issued_at=issued, expires_at=issued + timedelta(hours=1))


def _raw_cedar(bundle, identity, action_name, resource, context, live, now):
    action = bundle.actions.resolve(action_name)
    principal = principal_entity(identity)
    static_parents = next((e["parents"] for e in RAW_ENTITIES
                           if e["uid"] == {"type": "Pdp::Workload", "id": identity.principal_id}), [])
    entities = [e for e in RAW_ENTITIES if e["uid"]["type"] != "Pdp::Workload"]
    entities.append({"uid": principal.uid, "attrs": dict(principal.attrs),
                     "parents": [{"type": t, "id": i} for t, i in principal.parents] + static_parents})
    if resource.attrs is not None:
        entities.append({"uid": {"type": resource.type, "id": resource.id},
                         "attrs": dict(resource.attrs),
                         "parents": [{"type": t, "id": i} for t, i in resource.parents]})
    request = {"principal": principal.uid, "action": {"type": action.type, "id": action.id},
               "resource": {"type": resource.type, "id": resource.id},
               "context": cedar_context(action, context, live, identity, now)}
    return cedarpy.is_authorized(request, RAW_POLICIES, json.dumps(entities),
                                 schema=bundle.schema_text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(principal=principals, age_s=st.integers(0, 900),
       action=st.sampled_from(["read", "write", "delete", "export", "call"]),
       resource=resources, context=contexts, live=lives)
def test_decide_agrees_with_raw_cedar(example_bundle, principal, age_s, action, resource,
                                      context, live) -> None:
    identity = _identity(*principal, age_s=age_s)
    if action == "call":
        context = {k: v for k, v in context.items() if k == "method"}
    else:
        context = {k: v for k, v in context.items() if k == "purpose"}
    ours = decide(example_bundle, identity=identity, action=action, resource=resource,
                  context=context, live=live, now=MONDAY_10)
    raw = _raw_cedar(example_bundle, identity, action, resource, context, live, MONDAY_10)
    event(f"{ours.decision}: {ours.reason_codes[0]}")

    if raw.decision == cedarpy.Decision.NoDecision:
        # Cedar refused the input (e.g. a Dataset given to `call`): we deny, as invalid.
        assert ours.decision == "deny" and "request.invalid" in ours.reason_codes
        return
    raw_ids = sorted(raw.diagnostics.id_annotations_by_reason[r] for r in raw.diagnostics.reasons)
    ours_ids = sorted(r.policy for r in ours.reasons)
    errored_forbid = any("engine.error" == e.code and e.policy for e in ours.errors
                         if example_bundle.policies.get(e.policy or "")
                         and example_bundle.policies[e.policy].effect == "forbid")
    if errored_forbid:
        assert ours.decision == "deny"
        return
    assert ours.decision == ("allow" if raw.allowed else "deny")
    if ours.decision == "allow" or ours_ids:
        assert ours_ids == raw_ids
    else:
        # A default deny names no policy; Cedar names none either.
        assert raw_ids == []
