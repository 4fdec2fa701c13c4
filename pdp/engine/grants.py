"""Time-boxed, task-scoped grants: a bundle's Cedar template linked for one
principal and one resource, until an expiry.

A grant is live state, not policy text: linking it needs no reload, and it
stops working at ``expires_at`` because every decision links only the grants
active at its ``now``. The linked policy id is ``grant:<grant id>``, so a
decision (and the log) names the exact grant that allowed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cedarpy

from pdp.engine.bundle import Bundle, PolicyInfo
from pdp.engine.pdp_schema import WORKLOAD_TYPE

LINK_PREFIX = "grant:"


@dataclass(frozen=True, slots=True)
class Grant:
    """``template`` (a template's @id) linked for ``principal`` on ``resource`` until
    ``expires_at``."""

    id: str
    template: str
    principal: str
    resource_type: str
    resource_id: str
    expires_at: datetime
    task: str
    created_by: str | None
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def link_id(self) -> str:
        return LINK_PREFIX + self.id

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "template": self.template, "principal": self.principal,
                "resource": {"type": self.resource_type, "id": self.resource_id},
                "expires_at": _iso(self.expires_at), "task": self.task,
                "created_by": self.created_by, "created_at": _iso(self.created_at),
                "revoked_at": _iso(self.revoked_at) if self.revoked_at else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Grant:
        return cls(id=d["id"], template=d["template"], principal=d["principal"],
                   resource_type=d["resource"]["type"], resource_id=d["resource"]["id"],
                   expires_at=_parse(d["expires_at"]), task=d["task"],
                   created_by=d.get("created_by"), created_at=_parse(d["created_at"]),
                   revoked_at=_parse(d["revoked_at"]) if d.get("revoked_at") else None)


class GrantError(ValueError):
    """A grant cannot be made: unknown template, or slots the template does not have."""


def check_grant(bundle: Bundle, template: str) -> PolicyInfo:
    """The template a grant would link; a grant must name one with ?principal and ?resource."""
    info = bundle.policies.get(template)
    if info is None or not info.is_template:
        names = sorted(p.id for p in bundle.policies.values() if p.is_template)
        raise GrantError(f"no template {template!r} in the bundle; templates: {names}")
    slots = {s for t in bundle.policy_set.templates() if t["id"] == template for s in t["slots"]}
    if slots != {"?principal", "?resource"}:
        raise GrantError(f"template {template!r} must have slots ?principal and ?resource, "
                         f"has {sorted(slots)}")
    return info


def linked_policy_set(bundle: Bundle, grants: Iterable[Grant]) -> cedarpy.PolicySet:
    """The bundle's policy set with the usable ``grants`` linked, memoized in
    ``bundle.linked`` by what is linked."""
    usable = [g for g in grants if g.template in bundle.policies
              and bundle.policies[g.template].is_template]
    if not usable:
        return bundle.policy_set
    # Keyed by what is linked, not just the ids: an id never names two links.
    key = frozenset((g.link_id, g.template, g.principal, g.resource_type, g.resource_id)
                    for g in usable)
    return bundle.linked.get(key, lambda: bundle.policy_set.with_linked_batch([{
        "template_id": g.template, "new_id": g.link_id,
        "values": {"?principal": {"type": WORKLOAD_TYPE, "id": g.principal},
                   "?resource": {"type": g.resource_type, "id": g.resource_id}},
    } for g in sorted(usable, key=lambda g: g.id)]))


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
