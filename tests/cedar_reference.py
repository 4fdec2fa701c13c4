"""The reference the property tests compare with: raw cedarpy on the whole policy set.

Parsed independently of the engine (policy text as written, entities.json as
written, no slicing, no caches); only the request entities are built the way
the PDP defines them (the principal from its verified identity).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import cedarpy

from context.model import LiveSnapshot
from pdp.decision.decide import cedar_context, principal_entity
from pdp.decision.model import ResourceRef
from pdp.engine.bundle import Bundle
from pdp.engine.grants import Grant
from pdp.identity.model import VerifiedIdentity


def raw_decision(bundle: Bundle, policies: cedarpy.PolicySet, static: list[dict[str, Any]], *,
                 identity: VerifiedIdentity, action: str, resource: ResourceRef,
                 context: dict[str, Any], live: LiveSnapshot, now: datetime,
                 grants: Sequence[Grant] = (), template: str | None = None) -> cedarpy.AuthzResult:
    """``cedarpy.is_authorized`` on the full set; ``grants`` linked from ``template`` (an @id)."""
    info = bundle.actions.resolve(action)
    principal = principal_entity(identity)
    static_parents = next((e["parents"] for e in static if e["uid"] == principal.uid), [])
    # Other workloads are irrelevant to this request (and carry no attributes statically).
    entities = [e for e in static if e["uid"]["type"] != "Pdp::Workload"]
    entities.append({"uid": principal.uid, "attrs": dict(principal.attrs),
                     "parents": [{"type": t, "id": i} for t, i in principal.parents] + static_parents})
    if resource.attrs is not None:
        entities.append({"uid": {"type": resource.type, "id": resource.id},
                         "attrs": dict(resource.attrs),
                         "parents": [{"type": t, "id": i} for t, i in resource.parents]})
    if grants:
        template_id = next(t["id"] for t in policies.templates() if t["id_annotation"] == template)
        policies = policies.with_linked_batch([{
            "template_id": template_id, "new_id": g.link_id,
            "values": {"?principal": {"type": "Pdp::Workload", "id": g.principal},
                       "?resource": {"type": g.resource_type, "id": g.resource_id}}}
            for g in grants])
    request = {"principal": principal.uid, "action": {"type": info.type, "id": info.id},
               "resource": {"type": resource.type, "id": resource.id},
               "context": cedar_context(info, context, live, identity, now)}
    return cedarpy.is_authorized(request, policies, json.dumps(entities), schema=bundle.schema_text)


def determining_ids(result: cedarpy.AuthzResult) -> list[str]:
    """Cedar's determining policies by @id (a linked policy keeps its link id: it inherits
    its template's @id annotation)."""
    ids = result.diagnostics.id_annotations_by_reason
    return sorted(x if x.startswith("grant:") else ids.get(x, x)
                  for x in result.diagnostics.reasons)
