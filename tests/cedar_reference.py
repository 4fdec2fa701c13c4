"""The reference the property tests compare with: raw cedarpy on the whole policy set.

Built from the request alone, as the README's contract describes it, never
with the implementation's own helpers (a bug there would be copied into the
expectation): the policy text as written, ``entities.json`` as written, the
bundle's schema text joined with the ``Pdp`` namespace exactly as the README
prints it, the principal ``Pdp::Workload::"<id>"`` with the attributes and
parents the README lists, and ``context.live`` / ``context.credential`` from
the snapshot's and credential's fields. No slicing, no caches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import cedarpy

from context.model import LiveSnapshot
from pdp.decision.model import ResourceRef
from pdp.engine.grants import Grant
from pdp.identity.model import VerifiedIdentity

# README "What the PDP puts into every request: the `Pdp` namespace", verbatim.
PDP_NAMESPACE = """
namespace Pdp {
  entity Group in [Group];
  entity Workload in [Group] = {
    trust_domain: String,
    path: String,
    issuer: String,
    credential_kind: String,
    scopes: Set<String>,
    groups: Set<String>,
  };
  type Live = {
    now: datetime,
    incident: Bool,
    incident_level: Long,
    risk_level: Long,
    global_risk_level: Long,
    principal_risk_level: Long,
    business_hours: Bool,
    degraded: Bool,
    signals: Set<String>,
  };
  type Credential = {
    kind: String,
    age_s: Long,
    ttl_s: Long,
    lifetime_s: Long,
    delegated: Bool,
    actor: String,
    chain_depth: Long,
  };
}
"""
UNKNOWN_SECONDS = 2147483647  # README: an age or lifetime without `iat` counts as old
BOTH = frozenset({"live", "credential"})


@lru_cache(maxsize=16)
def reference_schema(bundle_schema_text: str) -> cedarpy.Schema:
    """The bundle's own schema (Cedar syntax) with the documented ``Pdp`` namespace."""
    return cedarpy.Schema.from_str(PDP_NAMESPACE + "\n" + bundle_schema_text)


def workload(identity: VerifiedIdentity, static: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """README: ``Pdp::Workload::"<id>"``, parents its groups plus those entities.json gives."""
    uid = {"type": "Pdp::Workload", "id": identity.principal_id}
    parents = [{"type": "Pdp::Group", "id": g} for g in sorted(identity.groups)]
    parents += next((list(e.get("parents", [])) for e in static if e["uid"] == uid), [])
    return {"uid": uid, "parents": parents, "attrs": {
        "trust_domain": identity.trust_domain, "path": identity.path,
        "issuer": identity.issuer, "credential_kind": identity.kind,
        "scopes": sorted(identity.scopes), "groups": sorted(identity.groups)}}


def live_context(live: LiveSnapshot) -> dict[str, Any]:
    now = live.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{live.now.microsecond // 1000:03d}Z")
    return {"now": {"__extn": {"fn": "datetime", "arg": now}},
            "incident": live.incident, "incident_level": live.incident_level,
            "risk_level": live.risk_level, "global_risk_level": live.global_risk_level,
            "principal_risk_level": live.principal_risk_level,
            "business_hours": live.business_hours, "degraded": bool(live.degraded),
            "signals": list(live.signals)}


def credential_context(identity: VerifiedIdentity, now: datetime) -> dict[str, Any]:
    issued = identity.issued_at or identity.not_before
    expires = identity.expires_at
    seconds = lambda a, b: int((a - b).total_seconds())  # noqa: E731
    return {"kind": identity.kind,
            "age_s": seconds(now, issued) if issued else UNKNOWN_SECONDS,
            "ttl_s": max(0, seconds(expires, now)) if expires else 0,
            "lifetime_s": seconds(expires, issued) if issued and expires else UNKNOWN_SECONDS,
            "delegated": identity.actor is not None, "actor": identity.actor or "",
            "chain_depth": identity.chain_depth}


@dataclass(frozen=True)
class StaticEntities:
    """entities.json as written, parsed once with the reference schema (workloads apart:
    their parents join the principal)."""

    records: Sequence[Mapping[str, Any]]
    handle: cedarpy.Entities


def static_entities(schema_text: str, records: Sequence[Mapping[str, Any]]) -> StaticEntities:
    others = [e for e in records if e["uid"]["type"] != "Pdp::Workload"]
    return StaticEntities(records, cedarpy.Entities.from_json_str(
        json.dumps(others), reference_schema(schema_text)))


def raw_decision(schema_text: str, policies: cedarpy.PolicySet,
                 static: Sequence[Mapping[str, Any]] | StaticEntities, *,
                 identity: VerifiedIdentity, action: tuple[str, str], resource: ResourceRef,
                 context: Mapping[str, Any], live: LiveSnapshot, now: datetime,
                 declares: frozenset[str] = BOTH, grants: Sequence[Grant] = (),
                 principal: Mapping[str, Any] | None = None,
                 schema: cedarpy.Schema | None = None) -> cedarpy.AuthzResult:
    """``cedarpy.is_authorized`` on the full set.

    ``schema_text``: the bundle's schema as written. ``static``: entities.json (or
    ``static_entities`` of it, parsed once). ``action``: its Cedar uid as (type, id).
    ``declares``: which of ``live``/``credential`` its schema context declares.
    ``grants`` are linked from the templates they name (by @id). ``principal``: a
    subject the PEP asserts, as a Cedar entity (its uid is the principal; with
    ``attrs`` it joins the entities unless entities.json defines it). ``schema``: a
    whole schema to use instead (the PDP's admin actions are not in the README's
    ``Pdp`` namespace; tests of admin decisions pass ``pdp schema``'s).
    """
    schema = schema if schema is not None else reference_schema(schema_text)
    if not isinstance(static, StaticEntities):
        static = static_entities(schema_text, static)
    static_uids = [e["uid"] for e in static.records if e["uid"]["type"] != "Pdp::Workload"]
    # Other workloads are irrelevant to this request (and carry no attributes statically).
    added = []
    if principal is None:
        principal = workload(identity, static.records)
    if principal["uid"] not in static_uids and "attrs" in principal:
        added.append(dict(principal))
    if resource.attrs is not None or resource.parents:
        added.append({"uid": {"type": resource.type, "id": resource.id},
                      "attrs": dict(resource.attrs or {}),
                      "parents": [{"type": t, "id": i} for t, i in resource.parents]})
    if grants:
        template_ids = {t["id_annotation"]: t["id"] for t in policies.templates()}
        policies = policies.with_linked_batch([{
            "template_id": template_ids[g.template], "new_id": g.link_id,
            "values": {"?principal": {"type": "Pdp::Workload", "id": g.principal},
                       "?resource": {"type": g.resource_type, "id": g.resource_id}}}
            for g in grants])
    full = dict(context)
    if "live" in declares:
        full["live"] = live_context(live)
    if "credential" in declares:
        full["credential"] = credential_context(identity, now)
    request = {"principal": principal["uid"], "action": {"type": action[0], "id": action[1]},
               "resource": {"type": resource.type, "id": resource.id}, "context": full}
    try:
        entities = static.handle.with_added_json_str(json.dumps(added), schema)
    except ValueError as e:
        # Entities the schema refuses: Cedar cannot decide (as it reports a bad request).
        return cedarpy.AuthzResult({"decision": "NoDecision", "diagnostics": {
            "reason": [], "errors": [f"failed to build request: entities: {e}"]}})
    return cedarpy.is_authorized(request, policies, entities, schema=schema)


def determining_ids(result: cedarpy.AuthzResult) -> list[str]:
    """Cedar's determining policies by @id (a linked policy keeps its link id: it inherits
    its template's @id annotation)."""
    ids = result.diagnostics.id_annotations_by_reason
    return sorted(x if x.startswith("grant:") else ids.get(x, x)
                  for x in result.diagnostics.reasons)
