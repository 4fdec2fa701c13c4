"""Hand Cedar only the part of the context that a slice of policies can read.

Cedar builds every value of a request's context before it evaluates anything,
and without a schema it reads each JSON value by trying one form after another;
the PDP's ``context.live`` and ``context.credential`` alone are seventeen values,
most of a small decision's cost in Cedar. A policy reads the context only
through chains of attribute accesses that start at ``context``
(``context.live.risk_level``); ``has``, ``==``, ``like``, a set's ``contains``
and every other use apply to the value at the end of such a chain. So the
values at the ends of the chains the slice's policies contain — whole, with
everything under them — are all Cedar can observe, and a context holding just
those evaluates exactly as the full one.

Where this would not hold, the whole value is kept: a chain that is ``context``
itself (``context has x``, ``context == {...}``) keeps everything; a value that
is not a plain record (an entity reference, an extension value) is never cut
into; a chain that reads an attribute the request lacks keeps the record it
reads from whole, so that Cedar's error names the same record. It is used only
where Cedar runs without the schema, for request shapes whose PEP context holds
plain values (``pdp.engine.request_shapes``: booleans, longs, strings, sets and
records of them), so no value left out could have made Cedar refuse the request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from cedarpy import pst

# What the policies read, as a trie of attribute names: None marks a value read whole.
Reads = dict[str, "Reads | None"]

_ESCAPES = frozenset({"__entity", "__extn", "__expr"})


def context_reads(policies: Iterable[pst.Template]) -> Reads | None:
    """The context values ``policies`` can read (a trie), or None when they can read
    the whole context."""
    paths: list[tuple[str, ...]] = []
    stack: list[Any] = [clause.expr for policy in policies for clause in policy.clauses]
    while stack:
        node = stack.pop()
        if isinstance(node, (pst.GetAttr, pst.Var)):
            chain: list[str] = []
            while isinstance(node, pst.GetAttr):
                chain.append(node.attr)
                node = node.base
            if isinstance(node, pst.Var):
                if node.name == "context":
                    if not chain:
                        return None
                    paths.append(tuple(reversed(chain)))
                continue
            stack.append(node)  # the chain starts elsewhere (an entity): look inside it
        elif is_dataclass(node) and not isinstance(node, type):
            for f in fields(node):
                value = getattr(node, f.name)
                if isinstance(value, Mapping):
                    stack.extend(value.values())
                elif isinstance(value, tuple):
                    stack.extend(value)
                else:
                    stack.append(value)
    return _trie(paths)


def _trie(paths: list[tuple[str, ...]]) -> Reads:
    root: Reads = {}
    for path in sorted(paths, key=len):  # a shorter path read whole covers longer ones
        node: Reads | None = root
        for i, key in enumerate(path):
            assert node is not None
            if i == len(path) - 1:
                node[key] = None
            elif key in node and node[key] is None:
                break  # already read whole
            else:
                node = node.setdefault(key, {})
    return root


def read_part(context: Mapping[str, Any], reads: Reads) -> Mapping[str, Any]:
    """The part of ``context`` that ``reads`` covers (see the module's docstring)."""
    out: dict[str, Any] = {}
    for key, below in reads.items():
        if key not in context:
            return context  # Cedar's error for the missing attribute names this record
        value = context[key]
        out[key] = value if below is None or not _plain_record(value) else read_part(
            value, below)
    return out


def _plain_record(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    keys = value.keys()
    return not (keys & _ESCAPES) and keys != {"type", "id"} and keys != {"fn", "arg"}
