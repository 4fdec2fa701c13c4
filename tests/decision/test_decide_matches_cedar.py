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

from pdp.decision.decide import cedar_context, decide, principal_entity
from pdp.decision.model import ResourceRef
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10, POLICIES
from tests.decision.strategies import contexts, contexts_for, identity_of, lives, principals, resources

RAW_POLICIES = cedarpy.PolicySet.from_str(
    "\n".join(p.read_text() for p in sorted(POLICIES.glob("*.cedar"))))
RAW_ENTITIES = json.loads((POLICIES / "entities.json").read_text())

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
    identity = identity_of(principal, age_s)
    context = contexts_for(action, context)
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
