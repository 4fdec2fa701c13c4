"""Evaluate only the policies that can apply: a slice chosen by scope.

Cedar evaluates every policy of a set, so the cost of a decision grows with
the bundle. But a policy whose scope cannot match the request cannot apply,
cannot determine the decision and cannot raise an error (Cedar checks the
scope before the conditions). So the decision and its determining policies on
the *slice* — the policies whose principal, action and resource scopes could
match — are exactly those on the full set. ``tests/engine/test_slicing.py``
checks this against raw cedarpy on random requests.

Scopes are indexed by what they name: ``principal == E``, ``in E`` and ``is T
in E`` by the entity E; ``is T`` by the type; unconstrained ones in a bucket of
their own. A request's candidates are the buckets of its principal and each of
its ancestors (and likewise for the resource), intersected, then filtered by
the action scope. Slices are built once per set of candidates and cached, and a
request without task grants finds its slice by its scope alone (principal,
action, resource and the parents the request gives them), so the candidates are
computed once per such scope, not per request.

Even a small bundle is sliced: Cedar's cost grows with every policy it
evaluates (at 10 policies, the two whose scope matched cost about a fifth less
to evaluate than all ten, measured here), while finding a known scope's slice is
one lookup; and a slice reads less of the context (``pdp.engine.context_reads``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace

import cedarpy
from cedarpy import pst

from pdp.engine.cache_budget import POLICY_SLICE_POLICIES, SCOPE_SLICE_POLICIES
from pdp.engine.context_reads import Reads, context_reads
from pdp.engine.lazy_nodes import LazyNodes
from pdp.engine.memo import Memo
from pdp.engine.scope_cache import Scope, ScopeKeys

Uid = tuple[str, str]

# A bundle of one policy has nothing to leave out.
SLICE_MIN_POLICIES = 2


def _type(t: pst.EntityType) -> str:
    return "::".join((*t.namespace, t.basename))


def _uid(u: pst.EntityUid) -> Uid:
    return (_type(u.type), u.id)


def scope_of(node: pst.Template) -> Scope:
    """The index's view of a policy's scope."""
    return Scope(_keys(node.principal), _keys(node.resource), _action_uids(node.action))


def _keys(constraint: pst.PrincipalOrResourceConstraint) -> ScopeKeys:
    if isinstance(constraint, (pst.ScopeEq, pst.ScopeIn)):
        if isinstance(constraint.entity, pst.Slot):
            return ScopeKeys(any=True)  # an unlinked template slot: keep it (it never applies)
        return ScopeKeys(entity=_uid(constraint.entity))
    if isinstance(constraint, pst.ScopeIsIn):
        if isinstance(constraint.entity, pst.Slot):
            return ScopeKeys(type=_type(constraint.entity_type))
        return ScopeKeys(entity=_uid(constraint.entity))
    if isinstance(constraint, pst.ScopeIs):
        return ScopeKeys(type=_type(constraint.entity_type))
    return ScopeKeys(any=True)


class _SideIndex:
    def __init__(self) -> None:
        self.any: set[str] = set()
        self.by_entity: dict[Uid, set[str]] = defaultdict(set)
        self.by_type: dict[str, set[str]] = defaultdict(set)

    def add(self, policy_id: str, keys: ScopeKeys) -> None:
        if keys.any:
            self.any.add(policy_id)
        elif keys.entity is not None:
            self.by_entity[keys.entity].add(policy_id)
        else:
            assert keys.type is not None
            self.by_type[keys.type].add(policy_id)

    def by_entities(self, uid: Uid, ancestors: Iterable[Uid]) -> set[str]:
        """Policies filed under this entity or one of its ancestors."""
        out = set(self.by_entity.get(uid, ()))
        for a in ancestors:
            out |= self.by_entity.get(a, set())
        return out


@dataclass(frozen=True, slots=True)
class ScopeSlice:
    """A request scope's policies: the Cedar set, their ids, and what of the context
    they can read (``pdp.engine.context_reads``; None: all of it)."""

    policies: cedarpy.PolicySet
    ids: frozenset[str]
    context_reads: Reads | None


class PolicyIndex:
    """Static policies indexed by principal and resource scope, with their action scopes."""

    def __init__(self, policies: Mapping[str, pst.Template],
                 scopes: Mapping[str, Scope] | None = None) -> None:
        """``scopes``: each policy's :func:`scope_of` when known without its node (a
        load on cached facts, :mod:`pdp.engine.scope_cache`, whose ``policies`` make
        their nodes on first use); by default read from the nodes."""
        self.policies = policies
        self._principal = _SideIndex()
        self._resource = _SideIndex()
        self._actions: dict[str, frozenset[Uid] | None] = {}
        for pid in policies:
            scope = scope_of(policies[pid]) if scopes is None else scopes[pid]
            self._principal.add(pid, scope.principal)
            self._resource.add(pid, scope.resource)
            self._actions[pid] = scope.actions
        # Unconstrained on both sides: always candidates (only the action can rule them out).
        self._both_any = frozenset(self._principal.any & self._resource.any)
        # `is T` on one side, unconstrained on the other: depends on the type alone.
        self._p_type_r_any = {t: frozenset(ids & self._resource.any)
                              for t, ids in self._principal.by_type.items()}
        self._r_type_p_any = {t: frozenset(ids & self._principal.any)
                              for t, ids in self._resource.by_type.items()}
        # Both weigh an entry by its policies, plus one for the key and ids it holds.
        self._slices: Memo[tuple[frozenset[str], frozenset[object]], cedarpy.PolicySet] = Memo(
            POLICY_SLICE_POLICIES, weigh=lambda key, _built: len(key[0]) + 1)
        self._by_scope: Memo[Hashable, ScopeSlice] = Memo(
            SCOPE_SLICE_POLICIES, weigh=lambda _key, built: len(built.ids) + 1)

    def scope_slice(self, scope: Hashable, candidates: Callable[[], frozenset[str]],
                    ) -> ScopeSlice:
        """The slice of a request without linked grants, kept by ``scope``: what
        determines ``candidates()`` (the principal's and resource's uids and given
        parents, and the action; their static ancestors are the bundle's)."""
        def build() -> ScopeSlice:
            ids = candidates()
            if isinstance(self.policies, LazyNodes):  # a load on cached facts
                self.policies.make(ids)
            return ScopeSlice(self.slice(ids), ids,
                              context_reads(self.policies[pid] for pid in ids))

        return self._by_scope.get(scope, build)

    def candidates(self, principal: Uid, principal_ancestors: Iterable[Uid],
                   actions: frozenset[Uid],
                   resource: Uid, resource_ancestors: Iterable[Uid],
                   extra: Mapping[str, pst.Template] = {}) -> frozenset[str]:  # noqa: B006
        """Ids of every policy (and ``extra`` linked policy) whose scope could match."""
        # Each side is P = any | type | entities (and R likewise); P & R is the union of
        # the nine pairwise intersections, of which the big ones (`any` and `is T`
        # buckets hold thousands of policies) are precomputed or iterate a small side.
        p_entities = self._principal.by_entities(principal, principal_ancestors)
        r_entities = self._resource.by_entities(resource, resource_ancestors)
        p_type = self._principal.by_type.get(principal[0], set())
        r_type = self._resource.by_type.get(resource[0], set())
        p_any, r_any = self._principal.any, self._resource.any
        found = set(self._both_any)
        found |= self._p_type_r_any.get(principal[0], frozenset())
        found |= self._r_type_p_any.get(resource[0], frozenset())
        found |= p_type & r_type
        found |= {p for p in p_entities if p in r_entities or p in r_any or p in r_type}
        found |= {r for r in r_entities if r in p_any or r in p_type}
        out = {pid for pid in found if _action_ok(self._actions[pid], actions)}
        for pid, node in extra.items():
            if _matches(node, principal, principal_ancestors, actions, resource,
                        resource_ancestors):
                out.add(pid)
        return frozenset(out)

    def slice(self, ids: frozenset[str], extra: Mapping[str, pst.Template] = {},  # noqa: B006
              ) -> cedarpy.PolicySet:
        """The policy set of ``ids`` (cached: most requests share a few slices)."""
        # A linked policy's id says which grant, its scope what it was linked to.
        key = (ids, frozenset((pid, extra[pid].principal, extra[pid].resource)
                              for pid in ids if pid in extra))

        def build() -> cedarpy.PolicySet:
            if isinstance(self.policies, LazyNodes):
                self.policies.make(ids)
            nodes = {pid: extra[pid] if pid in extra else self.policies[pid] for pid in ids}
            return cedarpy.PolicySet.from_pst(
                pst.PolicySet(templates={}, static_policies=nodes, template_links=()))

        return self._slices.get(key, build)


def _action_uids(constraint: pst.ActionConstraint) -> frozenset[Uid] | None:
    if isinstance(constraint, pst.ScopeAny):
        return None
    if isinstance(constraint, pst.ActionEq):
        return frozenset({_uid(constraint.entity)})
    return frozenset(_uid(e) for e in constraint.entities)


def _action_ok(named: frozenset[Uid] | None, request_actions: frozenset[Uid]) -> bool:
    """``request_actions``: the request's action and every action group it is in."""
    return named is None or not named.isdisjoint(request_actions)


def _side_ok(keys: ScopeKeys, uid: Uid, ancestors: Iterable[Uid]) -> bool:
    if keys.any:
        return True
    if keys.entity is not None:
        return keys.entity == uid or keys.entity in set(ancestors)
    return keys.type == uid[0]


def _matches(node: pst.Template, principal: Uid, principal_ancestors: Iterable[Uid],
             actions: frozenset[Uid], resource: Uid, resource_ancestors: Iterable[Uid]) -> bool:
    return (_side_ok(_keys(node.principal), principal, principal_ancestors)
            and _side_ok(_keys(node.resource), resource, resource_ancestors)
            and _action_ok(_action_uids(node.action), actions))


def link(template: pst.Template, link_id: str, principal: Uid, resource: Uid) -> pst.Template:
    """A template with its ?principal and ?resource slots filled: a static policy."""

    def fill(c: pst.PrincipalOrResourceConstraint, uid: Uid) -> pst.PrincipalOrResourceConstraint:
        entity = pst.EntityUid(type=pst.EntityType(basename=uid[0].split("::")[-1],
                                                   namespace=tuple(uid[0].split("::")[:-1])),
                               id=uid[1])
        if (isinstance(c, (pst.ScopeEq, pst.ScopeIn, pst.ScopeIsIn))
                and isinstance(c.entity, pst.Slot)):
            return replace(c, entity=entity)
        return c

    return replace(template, id=link_id, principal=fill(template.principal, principal),
                   resource=fill(template.resource, resource))
