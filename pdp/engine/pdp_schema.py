"""The Cedar schema of what the PDP itself puts into every request.

Bundles reference these types instead of redefining them:

- ``Pdp::Workload`` is the principal: the verified caller, whose id is its
  SPIFFE ID (or the issuer's principal claim), member of ``Pdp::Group``
  entities (from ``entities.json`` or the issuer's groups claim).
- ``Pdp::Live`` is ``context.live``: conditions at the moment of the decision.
- ``Pdp::Credential`` is ``context.credential``: facts of the credential.

An action whose schema context declares ``live: Pdp::Live`` and/or
``credential: Pdp::Credential`` gets those attributes filled in by the PDP; a
PEP may never send them. The namespace is merged with the bundle's schema at
load time (Cedar or JSON syntax), so a bundle must not declare ``Pdp`` itself.
``pdp schema`` prints this namespace in Cedar syntax.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import cedarpy

PDP_NAMESPACE = "Pdp"
WORKLOAD_TYPE = "Pdp::Workload"
GROUP_TYPE = "Pdp::Group"
ADMIN_TYPE = "Pdp::Admin"
ADMIN_ACTION_TYPE = "Pdp::Action"

# The PDP's own administrative actions, grouped by area. Admin endpoints are
# authorized like any request: `Pdp::Action::"<action>"` on `Pdp::Admin::"<area>"`,
# so a bundle grants them with ordinary Cedar, e.g.
#   permit(principal in Pdp::Group::"sre", action in Pdp::Action::"context", resource);
ADMIN_ACTIONS: dict[str, tuple[str, ...]] = {
    "context": ("context.read", "context.incident.set", "context.incident.clear",
                "context.risk.set"),
    "identity": ("identity.revocations.read", "identity.revoke", "identity.unrevoke"),
    "audit": ("audit.read", "audit.verify", "audit.replay", "audit.export"),
    "policy": ("policy.reload", "policy.grants.read", "policy.grant", "policy.ungrant"),
    # The credential broker's tasks (pdp.broker): list them, complete one.
    "broker": ("broker.tasks.read", "broker.task.complete"),
}
# The credential broker's exchange (RFC 8693, pdp.broker): `credential.issue` on the
# requested audience, `Pdp::Audience::"<aud>"`, with what is asked in the context.
AUDIENCE_TYPE = "Pdp::Audience"
ISSUE_ACTION = "credential.issue"
LIVE_ATTR = "live"
CREDENTIAL_ATTR = "credential"
RESERVED_CONTEXT_ATTRS = (LIVE_ATTR, CREDENTIAL_ATTR)


def reserved_key(context: Mapping[str, object] | None) -> str | None:
    """The first key of ``context`` that only the PDP may fill in (``live``,
    ``credential``), or None. The one check every door and ``decide()`` make: a PEP
    that sends one is refused, never merged over what the PDP knows."""
    if not context:
        return None
    return next((k for k in RESERVED_CONTEXT_ATTRS if k in context), None)


def _attrs(**types: Any) -> dict[str, Any]:
    return {"type": "Record", "attributes": types}


_STRING = {"type": "String"}
_LONG = {"type": "Long"}
_BOOL = {"type": "Boolean"}
_STRINGS = {"type": "Set", "element": {"type": "String"}}

# Cedar JSON schema of namespace Pdp. Attribute meanings are in the README.
_PDP_SCHEMA_JSON: dict[str, Any] = {
    PDP_NAMESPACE: {
        "commonTypes": {
            "Live": _attrs(
                now={"type": "Extension", "name": "datetime"},
                incident=_BOOL,          # an incident applies to this request
                risk_level=_LONG,        # 0 low, 1 medium, 2 high, 3 critical
                business_hours=_BOOL,
                # Added with live context (context/): see docs/context.md.
                incident_level=_LONG,    # highest applying incident: 0 none, 1 minor .. 3 critical
                global_risk_level=_LONG,     # risk_level = max(global, principal)
                principal_risk_level=_LONG,  # this principal's own (admin-set or automatic)
                degraded=_BOOL,          # a value was stale/unreachable: conservative defaults used
                signals=_STRINGS,        # behaviour signals of an automatic raise ("deny_burst")
            ),
            "Credential": _attrs(
                kind=_STRING,            # "x509-svid" | "jwt-svid" | "jwt"
                age_s=_LONG,             # now - iat (or notBefore)
                ttl_s=_LONG,             # exp - now
                lifetime_s=_LONG,        # exp - iat
                delegated=_BOOL,         # an RFC 8693 `act` claim is present
                actor=_STRING,           # the current actor (act.sub), "" if none
                chain_depth=_LONG,       # number of `act` levels
            ),
        },
        "entityTypes": {
            "Group": {"memberOfTypes": ["Group"]},
            "Workload": {
                "memberOfTypes": ["Group"],
                "shape": _attrs(
                    trust_domain=_STRING,     # "" when the subject is not a SPIFFE ID
                    path=_STRING,             # SPIFFE path, e.g. "/agents/reporter"
                    issuer=_STRING,           # `iss`, or spiffe://<trust domain>
                    credential_kind=_STRING,  # "x509-svid" | "jwt-svid" | "jwt"
                    scopes=_STRINGS,
                    groups=_STRINGS,
                ),
            },
        },
        "actions": {},
    }
}


def _admin_actions() -> dict[str, object]:
    applies = {"principalTypes": ["Workload"], "resourceTypes": ["Admin"],
               "context": {"type": "Record", "attributes": {
                   "live": {"type": "Live"}, "credential": {"type": "Credential"}}}}
    actions: dict[str, object] = {area: {} for area in ADMIN_ACTIONS}
    for area, names in ADMIN_ACTIONS.items():
        for name in names:
            actions[name] = {"memberOf": [{"id": area}], "appliesTo": applies}
    return actions


def _issue_action() -> dict[str, object]:
    """``credential.issue``: may the subject (acting through ``actor``) get a credential
    for the audience with these scopes, this long? The context names what was asked,
    after the broker's own never-wider/never-longer rules (docs/agents.md)."""
    exchange = _attrs(
        scopes=_STRINGS,               # the scopes the issued credential would carry
        lifetime_s=_LONG,              # its lifetime in seconds, already capped
        task_id=_STRING,               # the task it is for
        purpose=_STRING,               # the task's free-text purpose
        actor=_STRING,                 # the acting workload (actor_token), "" if none
        delegation_depth=_LONG,        # `act` levels of the credential to be issued
        subject_issuer=_STRING,        # `iss` of the subject token (the broker's: a re-delegation)
        requested_scopes=_STRINGS,     # as asked ([] when omitted: at most the subject's)
        requested_lifetime_s=_LONG,    # as asked (0 when omitted: as long as allowed)
        jti=_STRING,                   # the id the credential will carry (the log's link)
    )
    exchange["attributes"].update({"live": {"type": "Live"}, "credential": {"type": "Credential"}})
    return {ISSUE_ACTION: {"appliesTo": {"principalTypes": ["Workload"],
                                         "resourceTypes": ["Audience"], "context": exchange}}}


# Pdp::Admin::"<area>" is the resource of an admin action ("context", "identity", ...).
_PDP_SCHEMA_JSON[PDP_NAMESPACE]["entityTypes"]["Admin"] = {}
# Pdp::Audience::"<aud>": a service a broker-issued credential is for.
_PDP_SCHEMA_JSON[PDP_NAMESPACE]["entityTypes"]["Audience"] = {}
_PDP_SCHEMA_JSON[PDP_NAMESPACE]["actions"] = {**_admin_actions(), **_issue_action()}


def pdp_schema_json(*, admin_actions: bool = True,
                    without: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A fresh copy of the ``Pdp`` namespace in Cedar JSON schema format.

    ``admin_actions=False`` leaves out the admin actions: the types a bundle's own
    policies are validated against (``pdp.engine.validation``). ``without`` leaves
    out types by name (``"Group"``), for a bundle that declares the same name
    outside any namespace, which Cedar does not let a namespace shadow; the admin
    actions go too unless only ``Group`` is left out (they name the others).
    """
    doc = copy.deepcopy(_PDP_SCHEMA_JSON)
    namespace = doc[PDP_NAMESPACE]
    for name in without:
        namespace["entityTypes"].pop(name, None)
        namespace["commonTypes"].pop(name, None)
    for entity in namespace["entityTypes"].values():
        if "memberOfTypes" in entity:
            entity["memberOfTypes"] = [t for t in entity["memberOfTypes"] if t not in without]
    if not admin_actions or without - {"Group"}:
        namespace["actions"] = {}
    return doc


def pdp_schema_cedar(*, admin_actions: bool = True, without: frozenset[str] = frozenset()) -> str:
    """The ``Pdp`` namespace rendered in Cedar schema syntax by Cedar itself."""
    doc = pdp_schema_json(admin_actions=admin_actions, without=without)
    return str(cedarpy.Schema.from_json_str(json.dumps(doc)))
