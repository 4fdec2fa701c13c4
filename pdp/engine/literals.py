"""The entity uids a policy's conditions name (``App::Config::"limits".max``).

The entity slicer (:mod:`pdp.engine.entity_slice`) hands every request the entities
the policies name as literals. ``cedarpy.pst.entity_uids`` finds them with a generic
walk that asks ``dataclasses.fields`` and ``is_dataclass`` at every node: about a third
of a second of the start at 10,000 policies. A condition is an expression tree whose
node types are few and known, so the walk here goes by type, and hands any node type it
does not know (a later Cedar's) to cedarpy's own walk: the answer stays cedarpy's.
``tests/engine/test_literals.py`` checks the two equal on generated policies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cedarpy import pst

_LEAF: tuple[Any, ...] = ()

# Each expression node type to its children (entity literals are handled apart).
_CHILDREN: dict[type, Callable[[Any], Iterable[Any]]] = {
    pst.When: lambda n: (n.expr,),
    pst.Unless: lambda n: (n.expr,),
    pst.UnaryOp: lambda n: (n.arg,),
    pst.BinaryOp: lambda n: (n.left, n.right),
    pst.GetAttr: lambda n: (n.base,),
    pst.HasAttr: lambda n: (n.base,),
    pst.Like: lambda n: (n.base,),
    pst.Is: lambda n: (n.base,) if n.in_expr is None else (n.base, n.in_expr),
    pst.IfThenElse: lambda n: (n.cond, n.then_expr, n.else_expr),
    pst.Set: lambda n: n.elements,
    pst.Record: lambda n: n.fields.values(),
    pst.Var: lambda n: _LEAF,
    pst.Slot: lambda n: _LEAF,
    pst.BoolLit: lambda n: _LEAF,
    pst.LongLit: lambda n: _LEAF,
    pst.StringLit: lambda n: _LEAF,
}


def condition_literals(clauses: Iterable[pst.Clause]) -> set[pst.EntityUid]:
    """``set(pst.entity_uids(tuple(clauses)))``, by a walk that knows the node types."""
    found: set[pst.EntityUid] = set()
    stack: list[Any] = list(clauses)
    pop, push, children_of = stack.pop, stack.extend, _CHILDREN.get
    while stack:
        node = pop()
        kind = type(node)
        if kind is pst.EntityLit:
            found.add(node.value)
            continue
        children = children_of(kind)
        if children is None:
            found.update(pst.entity_uids(node))  # not a type listed above: cedarpy's walk
        else:
            push(children(node))
    return found


__all__ = ["condition_literals"]
