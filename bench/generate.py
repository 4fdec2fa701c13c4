"""Generate bundles that look real, of any size, for the scale and memory benchmarks
and for the slicing exactness property.

Shape: teams of workloads (agents and services) in groups; a resource hierarchy
of data domains > folders > datasets; per-workload permits on single datasets,
group permits over folders and domains, `is` and unconstrained scopes,
templates with grants, and a few global forbids — in the proportions a large
organisation's bundle has (mostly per-workload and per-group permits).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SCHEMA = """
namespace Gen {
  entity Domain;
  entity Folder in [Domain];
  entity Dataset in [Folder] = { sensitive: Bool, owner: String };
  action "read", "write" appliesTo {
    principal: Pdp::Workload, resource: [Dataset, Folder],
    context: { live: Pdp::Live, credential: Pdp::Credential },
  };
  action "delete" appliesTo {
    principal: Pdp::Workload, resource: Dataset,
    context: { live: Pdp::Live, credential: Pdp::Credential },
  };
}
"""


def sizes(policies: int) -> dict[str, int]:
    """Entity counts that grow with the bundle (a 10,000-policy bundle has ~2,000 workloads)."""
    teams = max(2, policies // 50)
    return {"teams": teams, "workloads": max(4, policies // 5), "domains": max(2, teams // 4),
            "folders": max(3, teams), "datasets": max(6, policies // 2)}


def generate_bundle(directory: Path, *, policies: int, entities: int | None = None,
                    seed: int = 7) -> dict[str, int]:
    """Write a bundle with about ``policies`` policies (and ``entities`` datasets/workloads
    in all, when given) to ``directory``; return the counts."""
    rng = random.Random(seed)
    n = sizes(policies)
    if entities is not None:
        extra = max(0, entities - (n["teams"] + n["workloads"] + n["domains"] + n["folders"]))
        n["datasets"] = max(n["datasets"], extra)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "schema.cedarschema").write_text(SCHEMA)
    workloads = [f"spiffe://example.org/team{i % n['teams']}/w{i}" for i in range(n["workloads"])]
    ents: list[dict] = []
    for t in range(n["teams"]):
        ents.append(_entity("Pdp::Group", f"team{t}", parents=[("Pdp::Group", "all-teams")]))
    ents.append(_entity("Pdp::Group", "all-teams"))
    ents.append(_entity("Pdp::Group", "responders"))
    for i, w in enumerate(workloads):
        parents = [("Pdp::Group", f"team{i % n['teams']}")]
        if i % 97 == 0:
            parents.append(("Pdp::Group", "responders"))
        ents.append({"uid": {"type": "Pdp::Workload", "id": w},
                     "parents": [{"type": t, "id": x} for t, x in parents]})
    for d in range(n["domains"]):
        ents.append(_entity("Gen::Domain", f"d{d}"))
    for f in range(n["folders"]):
        ents.append(_entity("Gen::Folder", f"f{f}", parents=[("Gen::Domain", f"d{f % n['domains']}")]))
    for k in range(n["datasets"]):
        ents.append(_entity("Gen::Dataset", f"ds{k}",
                            attrs={"sensitive": k % 5 == 0, "owner": f"team{k % n['teams']}"},
                            parents=[("Gen::Folder", f"f{k % n['folders']}")]))
    (directory / "entities.json").write_text(json.dumps(ents))

    out: list[str] = []
    per_workload = int(policies * 0.7)
    per_group = int(policies * 0.25)
    for i in range(per_workload):
        w = workloads[rng.randrange(len(workloads))]
        ds = rng.randrange(n["datasets"])
        action = rng.choice(["read", "write"])
        cond = rng.choice(["", " when { context.live.risk_level < 2 }",
                           " when { context.credential.age_s < 3600 }",
                           " unless { resource.sensitive && context.live.incident }"])
        out.append(_policy(f"w.{i}", "permit", f'principal == Pdp::Workload::{json.dumps(w)}',
                           f'action == Gen::Action::"{action}"',
                           f'resource == Gen::Dataset::"ds{ds}"', cond))
    for i in range(per_group):
        team = rng.randrange(n["teams"])
        if i % 3 == 0:
            res = f'resource in Gen::Domain::"d{rng.randrange(n["domains"])}"'
        elif i % 3 == 1:
            res = f'resource in Gen::Folder::"f{rng.randrange(n["folders"])}"'
        else:
            res = "resource is Gen::Dataset"
        action = rng.choice(['action == Gen::Action::"read"',
                             'action in [Gen::Action::"read", Gen::Action::"write"]', "action"])
        cond = rng.choice(["", ' when { resource has owner && resource.owner == "team' + str(team) + '" }',
                           " when { context.live.business_hours }"])
        out.append(_policy(f"g.{i}", "permit", f'principal in Pdp::Group::"team{team}"',
                           action, res, cond))
    out.append(_policy("t.read", "permit", "principal == ?principal",
                       'action == Gen::Action::"read"', "resource == ?resource", ""))
    out.append(_policy("f.incident", "forbid", "principal", 'action == Gen::Action::"write"',
                       "resource is Gen::Dataset",
                       ' when { context.live.incident && resource.sensitive }'
                       ' unless { principal in Pdp::Group::"responders" }'))
    out.append(_policy("f.risk", "forbid", "principal", 'action == Gen::Action::"delete"',
                       "resource", " when { context.live.risk_level >= 2 }"))
    out.append(_policy("f.any", "forbid", "principal is Pdp::Workload", "action",
                       'resource in Gen::Domain::"d0"', " when { context.live.risk_level >= 3 }"))
    remaining = policies - len(out) + 1  # +1: the template is not a policy
    for i in range(max(0, remaining)):
        out.append(_policy(f"x.{i}", "permit", "principal", 'action == Gen::Action::"read"',
                           f'resource == Gen::Dataset::"ds{rng.randrange(n["datasets"])}"',
                           f' when {{ principal.path == "/team{rng.randrange(n["teams"])}/w{i}" }}'))
    (directory / "policies.cedar").write_text("\n".join(out))
    return {"policies": len(out) - 1, "entities": len(ents), "workloads": len(workloads)}


def _entity(type_: str, id_: str, *, attrs: dict | None = None,
            parents: list[tuple[str, str]] | None = None) -> dict:
    return {"uid": {"type": type_, "id": id_}, "attrs": attrs or {},
            "parents": [{"type": t, "id": i} for t, i in parents or []]}


def _policy(pid: str, effect: str, principal: str, action: str, resource: str, cond: str) -> str:
    return (f'@id("{pid}") @reason("generated {pid}")\n'
            f"{effect} ({principal}, {action}, {resource}){cond};\n")
