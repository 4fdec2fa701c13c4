"""What Cedar sees of a request: the principal entity, ``context.credential``, ``context.live``.

Shared by ``decide()``, delegation (which evaluates the acting workload as a
principal of its own) and the decision record, which logs the principal as
Cedar saw it. Pure functions of the verified identity and the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from context.model import LiveSnapshot
from pdp.decision.model import AssertedSubject, ResourceRef
from pdp.engine.actions import ActionInfo
from pdp.engine.evaluate import EntityInput, EvalRequest
from pdp.engine.pdp_schema import CREDENTIAL_ATTR, GROUP_TYPE, LIVE_ATTR, WORKLOAD_TYPE
from pdp.identity.errors import BadSpiffeId
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import parse_spiffe_id

# Reported for a credential age or lifetime we cannot know (no iat): counts as old.
UNKNOWN_SECONDS = 2**31 - 1


def eval_request(identity: VerifiedIdentity, action: ActionInfo, resource: ResourceRef,
                 context: Mapping[str, Any], live: LiveSnapshot, now: datetime,
                 principal: EntityInput | None = None,
                 credential: dict[str, Any] | None = None) -> EvalRequest:
    """The request as Cedar evaluates it (``principal``: when it is not the identity's
    ``Pdp::Workload``; ``credential``: see ``cedar_context``)."""
    return EvalRequest(
        principal=principal or principal_entity(identity),
        action=action,
        resource=EntityInput(type=resource.type, id=resource.id, attrs=resource.attrs,
                             parents=resource.parents),
        context=cedar_context(action, context, live, identity, now, credential),
        pep_context=context,
    )


def principal_entity(identity: VerifiedIdentity) -> EntityInput:
    """The ``Pdp::Workload`` entity for a verified identity."""
    return EntityInput(
        type=WORKLOAD_TYPE,
        id=identity.principal_id,
        attrs={
            "trust_domain": identity.trust_domain,
            "path": identity.path,
            "issuer": identity.issuer,
            "credential_kind": identity.kind,
            "scopes": sorted(identity.scopes),
            "groups": sorted(identity.groups),
        },
        parents=tuple((GROUP_TYPE, g) for g in sorted(identity.groups)),
        cache_key=identity,
    )


ASSERTED_KIND: Final = "asserted"


def asserted_principal(subject: AssertedSubject) -> tuple[VerifiedIdentity, EntityInput]:
    """The identity and Cedar principal of a subject a trusted PEP asserts (no credential).

    A ``Pdp::Workload`` gets the attributes the PDP owns: trust domain and path
    from its SPIFFE ID, ``credential_kind`` and ``context.credential.kind``
    ``"asserted"``, ``issuer`` ``asserted-by:<pep>``; ``properties.scopes`` and
    ``properties.groups`` (lists of strings) fill scopes and groups. Any other
    type (``Photo::User``) is described by its ``properties``, which are checked
    against the schema like a PEP-described resource. The identity has no
    ``iat``/``exp``: ``context.credential`` reports it as old, never fresh.
    Raises ``ValueError`` for scopes or groups that are not lists of strings.
    """
    props = dict(subject.properties or {})
    issuer = f"asserted-by:{subject.asserted_by}"
    if subject.type != WORKLOAD_TYPE:
        identity = VerifiedIdentity(principal_id=subject.id, kind=ASSERTED_KIND,
                                    issuer=issuer)
        return identity, EntityInput(
            type=subject.type, id=subject.id,
            attrs=props if subject.properties is not None else None, pep_described=True)
    trust_domain = path = ""
    try:
        spiffe = parse_spiffe_id(subject.id)
        trust_domain, path = spiffe.trust_domain, spiffe.path
    except BadSpiffeId:
        pass
    identity = VerifiedIdentity(
        principal_id=subject.id, kind=ASSERTED_KIND, issuer=issuer,
        trust_domain=trust_domain, path=path,
        scopes=_strings(props.get("scopes"), "scopes"),
        groups=_strings(props.get("groups"), "groups"))
    return identity, principal_entity(identity)


def _strings(value: Any, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"subject.properties.{name} must be a list of strings")
    return frozenset(value)


def credential_facts(identity: VerifiedIdentity, now: datetime) -> dict[str, Any]:
    """The value of ``context.credential`` (Cedar type ``Pdp::Credential``)."""
    issued = identity.issued_at or identity.not_before
    expires = identity.expires_at
    return {
        "kind": identity.kind,
        "age_s": _seconds(now - issued) if issued else UNKNOWN_SECONDS,
        "ttl_s": max(0, _seconds(expires - now)) if expires else 0,
        "lifetime_s": _seconds(expires - issued) if issued and expires else UNKNOWN_SECONDS,
        "delegated": identity.actor is not None,
        "actor": identity.actor or "",
        "chain_depth": identity.chain_depth,
    }


def cedar_context(action: ActionInfo, context: Mapping[str, Any], live: LiveSnapshot,
                  identity: VerifiedIdentity, now: datetime,
                  credential: dict[str, Any] | None = None) -> dict[str, Any]:
    """The PEP's context at the top level, plus ``live``/``credential`` where the action
    declares them (``credential``: ``credential_facts(identity, now)`` when the caller has
    it already, as ``decide()`` does to share it with the decision record)."""
    out = dict(context)
    if action.declares_live:
        out[LIVE_ATTR] = live.to_cedar()  # rendered once per snapshot, shared
    if action.declares_credential:
        out[CREDENTIAL_ATTR] = (credential if credential is not None
                                else credential_facts(identity, now))
    return out


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


__all__ = ["ASSERTED_KIND", "UNKNOWN_SECONDS", "asserted_principal", "cedar_context",
           "credential_facts", "eval_request", "principal_entity"]
