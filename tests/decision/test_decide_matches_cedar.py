"""Property: decide() reaches raw Cedar's decision, with the same determining policies.

The reference is cedarpy.is_authorized on the bundle's raw text (parsed
independently, not re-keyed), the full entity list and the merged schema.
The one permitted difference is fail-closed: a forbid that errored denies.
"""

from __future__ import annotations

import json

import cedarpy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pdp.decision.decide import decide
from tests.cedar_reference import determining_ids, raw_decision
from tests.conftest import MONDAY_10, POLICIES, examples
from tests.decision.strategies import (
    contexts,
    contexts_for,
    identity_of,
    lives,
    principals,
    resources,
)

RAW_POLICIES = cedarpy.PolicySet.from_str(
    "\n".join(p.read_text() for p in sorted(POLICIES.glob("*.cedar"))))
RAW_ENTITIES = json.loads((POLICIES / "entities.json").read_text())
SCHEMA_TEXT = (POLICIES / "schema.cedarschema").read_text()

@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(principal=principals, age_s=st.integers(0, 900),
       action=st.sampled_from(["read", "write", "delete", "export", "call"]),
       resource=resources, context=contexts, live=lives)
def test_decide_agrees_with_raw_cedar(example_bundle, principal, age_s, action, resource,
                                      context, live) -> None:
    identity = identity_of(principal, age_s)
    context = contexts_for(action, context)
    ours = decide(example_bundle, identity=identity, action=action, resource=resource,
                  context=context, live=live, now=MONDAY_10)
    # Every action of the example schema declares context.live and context.credential.
    raw = raw_decision(SCHEMA_TEXT, RAW_POLICIES, RAW_ENTITIES, identity=identity,
                       action=("App::Action", action), resource=resource, context=context,
                       live=live, now=MONDAY_10)
    event(f"{ours.decision}: {ours.reason_codes[0]}")

    if raw.decision == cedarpy.Decision.NoDecision:
        # Cedar refused the input (e.g. a Dataset given to `call`): we deny, as invalid.
        assert ours.decision == "deny" and "request.invalid" in ours.reason_codes
        return
    raw_ids = determining_ids(raw)
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
