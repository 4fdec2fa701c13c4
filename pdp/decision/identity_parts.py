"""What a decision renders of its verified identity, once per identity: Cedar's principal
entity, and the record's ``credential`` facts and ``principal_entity``.

The verifier hands the same ``VerifiedIdentity`` object to every request of one
credential while it is cached, so at 64 connections of a few workloads these are built
once per credential, not once per decision. ``IdentityParts`` is that memo: one per
``DecisionService`` (its ``identity_parts``), passed explicitly to ``decide()`` and
``decision_record``; without one, both render afresh, to the same values.
"""

from __future__ import annotations

from typing import Any

from pdp.decision.cedar_request import principal_entity
from pdp.engine.bundle import Bundle
from pdp.engine.evaluate import EntityInput
from pdp.identity.model import VerifiedIdentity


def credential_facts_record(identity: VerifiedIdentity | None, credential_sha256: str | None,
                            proven_principal: str | None = None) -> dict[str, Any] | None:
    """The credential's facts; for a refused one only its SHA-256 and, when a trusted
    signature or certificate path proved whose it was before it was refused (expired,
    revoked), ``refused_principal``. A refused credential's *claimed* name is never
    recorded: ``principal`` stays null, so a query by principal never shows forgeries."""
    if identity is None:
        facts = {"sha256": credential_sha256} if credential_sha256 else None
        if facts is not None and proven_principal is not None:
            facts["refused_principal"] = proven_principal
        return facts
    return {
        "issuer": identity.issuer,
        "kind": identity.kind,
        "jti": identity.jti,
        "serial": identity.serial,
        "sha256": identity.credential_sha256 or credential_sha256,
        "issued_at": identity.issued_at.isoformat() if identity.issued_at else None,
        "not_before": identity.not_before.isoformat() if identity.not_before else None,
        "expires_at": identity.expires_at.isoformat() if identity.expires_at else None,
        "trust_domain": identity.trust_domain,
        "scopes": sorted(identity.scopes),
        "groups": sorted(identity.groups),
        "actor": identity.actor,
        "actor_chain": list(identity.actor_chain),
        "chain_depth": identity.chain_depth,
        "path": identity.path,
        "flags": list(identity.flags),
    }


def principal_entity_record(identity: VerifiedIdentity | None, bundle: Bundle | None,
                            entity: EntityInput | None = None) -> dict[str, Any] | None:
    """The ``Pdp::Workload`` entity as Cedar saw it: attributes, and parents from the
    credential's groups plus those the bundle's ``entities.json`` gives it (``entity``:
    ``principal_entity(identity)`` when the caller has it)."""
    if identity is None:
        return None
    entity = entity if entity is not None else principal_entity(identity)
    parents = list(entity.parents) + [
        (p["type"], p["id"]) for p in (bundle.workload_parents.get(entity.id, ())
                                       if bundle is not None else ())]
    return {"type": entity.type, "id": entity.id, "attrs": dict(entity.attrs or {}),
            "parents": [{"type": t, "id": i} for t, i in dict.fromkeys(parents)]}


class IdentityParts:
    """The parts of the last verified identity seen (see the module docstring).

    Keyed by the objects themselves (``is``): the identity is frozen, and the recorded
    principal entity depends on the bundle only through the workload's ``entities.json``
    parents (``bundle.workload_parents``), a tuple a load builds once; a reload builds
    new ones, so another identity, a reload or another credential hash is a new entry.
    Only that tuple is held, never the bundle: a replaced bundle is freed as before.
    A part is shared by the decisions of that identity: Cedar reads the entity (the
    engine builds its handle by ``cache_key``, the identity), and records only serialize
    theirs (``pdp.audit.records.prepare``, before the append returns); nothing changes
    them after that (every store keeps the record's text). Each slot is read once and
    replaced whole, so a thread racing another only renders again.
    """

    def __init__(self) -> None:
        self._workload: tuple[VerifiedIdentity, EntityInput] | None = None
        self._facts: tuple[VerifiedIdentity, str | None, dict[str, Any] | None] | None = None
        self._entity: tuple[VerifiedIdentity, object, dict[str, Any] | None] | None = None

    def workload(self, identity: VerifiedIdentity) -> EntityInput:
        """``principal_entity(identity)``: the ``Pdp::Workload`` Cedar evaluates."""
        last = self._workload  # one read: another thread may replace it meanwhile
        if last is not None and last[0] is identity:
            return last[1]
        entity = principal_entity(identity)
        self._workload = (identity, entity)
        return entity

    def facts(self, identity: VerifiedIdentity,
              credential_sha256: str | None) -> dict[str, Any] | None:
        """The record's ``credential`` (``credential_facts_record``)."""
        last = self._facts
        if last is not None and last[0] is identity and last[1] == credential_sha256:
            return last[2]
        facts = credential_facts_record(identity, credential_sha256)
        self._facts = (identity, credential_sha256, facts)
        return facts

    def entity(self, identity: VerifiedIdentity | None,
               bundle: Bundle | None) -> dict[str, Any] | None:
        """The record's ``principal_entity`` (``principal_entity_record``)."""
        if identity is None:
            return None
        parents = (bundle.workload_parents.get(identity.principal_id, ())
                   if bundle is not None else ())
        last = self._entity
        if last is not None and last[0] is identity and last[1] is parents:
            return last[2]
        entity = principal_entity_record(identity, bundle, self.workload(identity))
        self._entity = (identity, parents, entity)
        return entity


__all__ = ["IdentityParts", "credential_facts_record", "principal_entity_record"]
