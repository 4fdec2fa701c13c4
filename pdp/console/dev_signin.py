"""The ``--dev`` sign-in: the identities a developer may pick, from the bundle's groups.

Each ``Pdp::Group`` of the bundle is listed with the workloads ``entities.json``
puts in it; signing in as one of them makes the console act as that workload
(see :mod:`pdp.console.access`). Workloads in no group are listed too: signing
in as one shows what a workload token gets (nothing, under the example bundle).
"""

from __future__ import annotations

from dataclasses import dataclass

from pdp.engine.bundle import Bundle
from pdp.engine.pdp_schema import GROUP_TYPE


@dataclass(frozen=True, slots=True)
class DevGroup:
    """A group of the bundle and the workloads in it (sorted)."""

    name: str
    members: tuple[str, ...]


def dev_groups(bundle: Bundle) -> list[DevGroup]:
    """The bundle's groups with their member workloads; a last ``""`` group holds workloads
    without a group."""
    groups = sorted(id_ for type_, id_ in bundle.static_uids if type_ == GROUP_TYPE)
    members: dict[str, list[str]] = {g: [] for g in groups}
    loners: list[str] = []
    for workload, parents in sorted(bundle.workload_parents.items()):
        names = [p["id"] for p in parents if p.get("type") == GROUP_TYPE]
        for name in names:
            members.setdefault(name, []).append(workload)
        if not names:
            loners.append(workload)
    out = [DevGroup(g, tuple(members[g])) for g in sorted(members)]
    if loners:
        out.append(DevGroup("", tuple(loners)))
    return out


def dev_identities(bundle: Bundle) -> frozenset[str]:
    """Every workload a dev sign-in may choose."""
    return frozenset(bundle.workload_parents)


__all__ = ["DevGroup", "dev_groups", "dev_identities"]
