"""A policy's node, made when first asked for.

A load on cached facts (:mod:`pdp.engine.scope_cache`) knows each policy's scope,
effect and annotations without its node; the node (its conditions, for slices,
explanations and grants) is made from the policy's own code the first time something
reads it: ``cedarpy.policies_to_pst`` of that one policy, as
:mod:`pdp.engine.policy_parse` makes a file's nodes a chunk at a time, renumbered to its
place in the file. It is checked against the facts the load used (kind, effect,
annotations): a node that disagrees raises ``ValueError``, which denies the request that
needed it (``cedar failed``) rather than deciding on a policy other than the one indexed.

A slice's nodes are made together (:func:`make_together`): one call to Cedar for all of
them costs about half as much per policy as one call each; each node is checked as
above, and any that a joint parse does not give exactly is left to be made alone.

Thread-safe without a lock: two first uses may both make the node; they make equal ones
and either is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping

import cedarpy
from cedarpy import pst

from pdp.engine.scope_cache import PolicyFacts


class LazyNode:
    """A node, from ``make`` on first :meth:`get`. Equal to another when their nodes are
    equal (so bundles loaded either way compare equal)."""

    __slots__ = ("_code", "_make", "_node", "_source")

    def __init__(self, make: Callable[[], pst.Template]) -> None:
        self._make = make
        self._node: pst.Template | None = None
        # What make_together needs: the policy's code and facts, or the node this one renames.
        self._code: tuple[str, PolicyFacts] | None = None
        self._source: LazyNode | None = None

    @classmethod
    def of(cls, node: pst.Template) -> LazyNode:
        """A node already made (a load that parsed its file)."""
        lazy = cls(_made)
        lazy._node = node
        return lazy

    @classmethod
    def from_code(cls, code: str, facts: PolicyFacts) -> LazyNode:
        """The node of the one policy ``code``, which the load knew by ``facts``."""
        lazy = cls(lambda: node_from_code(code, facts))
        lazy._code = (code, facts)
        return lazy

    def renamed(self, node_id: str) -> pst.Template | LazyNode:
        """This node under another id: at once if it is made, else on first use."""
        if self._node is not None:
            return dataclasses.replace(self._node, id=node_id)
        lazy = LazyNode(lambda: dataclasses.replace(self.get(), id=node_id))
        lazy._source = self
        return lazy

    @property
    def cedar_id(self) -> str:
        """The node's id (``policy<N>``, its place in its file), without making it."""
        if self._node is None and self._code is not None:
            return self._code[1].cedar_id
        return self.get().id

    @property
    def is_made(self) -> bool:
        return self._node is not None

    def get(self) -> pst.Template:
        node = self._node
        if node is None:
            node = self._node = self._make()
        return node

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LazyNode) and self.get() == other.get()

    def __hash__(self) -> int:
        return hash(self.get())

    def __repr__(self) -> str:
        return f"LazyNode({self._node!r})" if self._node is not None else "LazyNode(...)"


def make_together(nodes: Iterable[LazyNode]) -> None:
    """Make those of ``nodes`` not made yet (or the nodes they rename) in one call to
    Cedar. A node the joint parse does not give as its facts describe is left as it was,
    to be made (and refused) alone; so is every node when the parse fails."""
    pending: dict[int, tuple[LazyNode, str, PolicyFacts]] = {}
    for lazy in nodes:
        base = lazy._source or lazy
        if base._node is None and base._code is not None:
            pending[id(base)] = (base, *base._code)
    if len(pending) < 2:
        return
    found = list(pending.values())
    try:
        parsed = cedarpy.policies_to_pst("\n".join(code for _, code, _ in found))
    except ValueError:
        return
    if len(parsed.static_policies) + len(parsed.templates) != len(found):
        return
    for number, (base, _, facts) in enumerate(found):
        group = parsed.templates if facts.is_template else parsed.static_policies
        node = group.get(f"policy{number}")
        if node is not None and _agrees(node, facts):
            base._node = dataclasses.replace(node, id=facts.cedar_id)


def _agrees(node: pst.Template, facts: PolicyFacts) -> bool:
    return node.effect == facts.effect and node.annotations == facts.annotations


def _made() -> pst.Template:
    raise AssertionError("a node made at load is never made again")


def node_from_code(code: str, facts: PolicyFacts) -> pst.Template:
    """Cedar's node of the single policy ``code``, numbered ``facts.cedar_id``; raises
    ``ValueError`` unless it is the policy ``facts`` describe."""
    parsed = cedarpy.policies_to_pst(code)
    group = parsed.templates if facts.is_template else parsed.static_policies
    other = parsed.static_policies if facts.is_template else parsed.templates
    node = group.get("policy0")
    if node is None or len(group) != 1 or other or not _agrees(node, facts):
        raise ValueError(f"policy {facts.cedar_id} is not the one its cached facts describe")
    return dataclasses.replace(node, id=facts.cedar_id)


class LazyNodes(Mapping[str, pst.Template]):
    """Nodes by policy id, each made on first access where it is not made yet (iterating
    the keys makes none)."""

    __slots__ = ("_nodes",)

    def __init__(self, nodes: Mapping[str, pst.Template | LazyNode]) -> None:
        self._nodes = dict(nodes)

    def __getitem__(self, key: str) -> pst.Template:
        node = self._nodes[key]
        return node.get() if isinstance(node, LazyNode) else node

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def make(self, keys: Iterable[str]) -> None:
        """Make the nodes of ``keys`` not made yet together (:func:`make_together`)."""
        make_together(node for key in keys if isinstance(node := self._nodes.get(key), LazyNode))
