"""The embedded path's benchmark bundles and the ways to decide one request on them.

One generated policy text per size (10, 100, 1,000 policies): per-workload
permits on single datasets with conditions on live context and credential age,
a permit by SPIFFE path prefix over a data domain every tenth policy, and two
guards (forbids). Two bundles share it: one whose datasets the PEP describes in
the request (``entities.json`` empty) and one whose ``entities.json`` defines
them. ``Case`` decides the same request (a per-workload permit in the middle of
the bundle allows it) with ``decide()`` on either bundle, and with raw
``cedarpy.is_authorized`` with and without the schema on pre-parsed handles
(the principal, and the resource when the PEP describes it, already in the
entity handle: raw Cedar's best case). ``bench.engine_overhead`` times decide()
against the raw calls, ``bench.cedarling`` against Janssen Cedarling.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cedarpy

from context.calendar import BusinessCalendar
from context.memory import InMemoryContext
from pdp.decision.decide import cedar_context, decide, principal_entity
from pdp.decision.model import Decision, ResourceRef
from pdp.engine import load_bundle
from pdp.identity.model import VerifiedIdentity

SIZES = (10, 100, 1000)
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday, in business hours

SCHEMA = """
namespace Cmp {
  entity Dataset = { domain: String, sensitive: Bool };
  action "read", "write" appliesTo {
    principal: Pdp::Workload, resource: Dataset,
    context: { live: Pdp::Live, credential: Pdp::Credential },
  };
}
"""


def workload(i: int) -> tuple[str, int]:
    """The SPIFFE ID of workload ``i`` and its team."""
    team = i % 20
    return f"spiffe://example.org/team{team}/w{i}", team


def policies(n: int) -> list[str]:
    """``n`` policies, each with its own ``@id`` and ``@reason``."""
    out = [
        '@id("guard-incident") @reason("No writes to sensitive data during an incident.")\n'
        'forbid (principal, action == Cmp::Action::"write", resource)\n'
        "when { context.live.incident && resource.sensitive };",
        '@id("guard-risk") @reason("Nothing at critical risk.")\n'
        "forbid (principal, action, resource) when { context.live.risk_level >= 3 };",
    ]
    for i in range(n - len(out)):
        spiffe_id, team = workload(i)
        if i % 10 == 9:
            out.append(
                f'@id("team-{i}") @reason("Team {team} reads its domain.")\n'
                f'permit (principal, action == Cmp::Action::"read", resource)\n'
                f'when {{ principal.path like "/team{team}/*" && resource.domain == "d{team}" '
                f"&& !resource.sensitive }};")
        else:
            action = "read" if i % 3 else "write"
            out.append(
                f'@id("w-{i}") @reason("Workload {i} uses dataset {i}.")\n'
                f'permit (principal == Pdp::Workload::"{spiffe_id}", '
                f'action == Cmp::Action::"{action}", resource == Cmp::Dataset::"ds{i}")\n'
                "when { context.live.risk_level < 2 && context.credential.age_s < 3600 };")
    return out


def dataset_attrs(i: int) -> dict[str, Any]:
    # Not the domain of its workload's team: only the per-workload permit applies.
    return {"domain": f"d{i % 20 + 1}", "sensitive": i % 5 == 0}


def write_bundles(root: Path, n: int) -> tuple[Path, Path]:
    """Our two bundle directories for ``n`` policies: datasets described in the request,
    and datasets defined by ``entities.json``."""
    described, static = root / f"ours-{n}", root / f"ours-static-{n}"
    text = "\n\n".join(policies(n)) + "\n"
    for directory, entities in ((described, []), (static, [
            {"uid": {"type": "Cmp::Dataset", "id": f"ds{i}"}, "attrs": dataset_attrs(i),
             "parents": []} for i in range(n)])):
        directory.mkdir(parents=True)
        (directory / "schema.cedarschema").write_text(SCHEMA)
        (directory / "policies.cedar").write_text(text)
        (directory / "entities.json").write_text(json.dumps(entities))
    return described, static


class Case:
    """One size: decide() on either bundle, and raw cedarpy on the same request."""

    def __init__(self, root: Path, n: int) -> None:
        self.n = n
        described_dir, static_dir = write_bundles(root, n)
        self.bundle = load_bundle(described_dir, answer_memo_bytes=0)
        self.static_bundle = load_bundle(static_dir, answer_memo_bytes=0)
        k = (n - 2) // 2 // 10 * 10 + 1  # a per-workload permit in the middle of the bundle
        spiffe_id, _ = workload(k)
        self.expected = f"w-{k}"
        self.identity = VerifiedIdentity(
            principal_id=spiffe_id, kind="jwt-svid", issuer="spiffe://example.org",
            trust_domain="example.org", path=spiffe_id.removeprefix("spiffe://example.org"),
            issued_at=NOW - timedelta(seconds=30), expires_at=NOW + timedelta(minutes=5))
        self.attrs = dataset_attrs(k)
        self.resource = ResourceRef("Cmp::Dataset", f"ds{k}", attrs=self.attrs)
        self.static_resource = ResourceRef("Cmp::Dataset", f"ds{k}")
        self.action = "read" if k % 3 else "write"
        self.live = InMemoryContext(calendar=BusinessCalendar()).snapshot(None, NOW)
        action = self.bundle.actions.resolve(self.action)
        self.context = cedar_context(action, {}, self.live, self.identity, NOW)
        self.principal = principal_entity(self.identity)
        principal_json = {"uid": self.principal.uid, "attrs": dict(self.principal.attrs or {}),
                          "parents": []}
        resource_json = {"uid": {"type": "Cmp::Dataset", "id": self.resource.id},
                         "attrs": self.attrs, "parents": []}
        schema = self.bundle.schema
        # Raw Cedar's entities, parsed once: the principal and the described resource, or
        # the principal added to the static bundle's entities.json.
        self.entities = cedarpy.Entities.from_json_str(
            json.dumps([principal_json, resource_json]), schema)
        static_records = json.loads((static_dir / "entities.json").read_text())
        self.static_entities = cedarpy.Entities.from_json_str(
            json.dumps([principal_json, *static_records]), schema)
        self.raw_request = {"principal": self.principal.uid,
                            "action": {"type": action.type, "id": action.id},
                            "resource": {"type": "Cmp::Dataset", "id": self.resource.id},
                            "context": self.context}

    def ours(self) -> Decision:
        """decide(), the dataset described in the request."""
        return decide(self.bundle, identity=self.identity, action=self.action,
                      resource=self.resource, context={}, live=self.live, now=NOW)

    def ours_static(self) -> Decision:
        """decide(), the dataset defined by the bundle's entities.json."""
        return decide(self.static_bundle, identity=self.identity, action=self.action,
                      resource=self.static_resource, context={}, live=self.live, now=NOW)

    def raw(self, *, schema: bool = True, static: bool = False) -> cedarpy.AuthzResult:
        """Raw cedarpy on the whole policy set, with or without the schema."""
        return cedarpy.is_authorized(
            self.raw_request, self.bundle.policy_set,
            self.static_entities if static else self.entities,
            schema=self.bundle.schema if schema else None)

    def check(self) -> None:
        """The same answer from every way, or the timing means nothing."""
        for d in (self.ours(), self.ours_static()):
            assert d.allowed, d.explanation
            assert [r.policy for r in d.reasons] == [self.expected], d.reasons
        for schema in (True, False):
            for static in (True, False):
                raw = self.raw(schema=schema, static=static)
                assert raw.allowed and [str(p) for p in raw.diagnostics.reasons] == [
                    self.expected], (schema, static, raw.diagnostics.errors)
