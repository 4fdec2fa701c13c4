"""Parse a ``*.cedar`` file into PST nodes a few dozen policies per call, so that a
serving process keeps answering while a large bundle is loaded beside it.

``cedarpy.policies_to_pst`` builds Python objects, so it holds the GIL for the whole
call: about 1.8 s for one file of 10,000 policies, during which no other thread of the
process runs. A hot reload runs in a thread of the serving process, and its event loop
stood still for that long (``bench/startup.py``: p99 during a reload was 118× the p99
before it). Cut at the policies' own ends (:mod:`pdp.engine.policy_source`) and parsed
:data:`CHUNK_POLICIES` at a time, the same nodes come back in calls of a few
milliseconds, and the interpreter hands the GIL to the event loop between them.

Exactness: a chunk is the comment-free code of consecutive policies, cut where Cedar's
grammar ends a policy (``;``, which appears nowhere else outside a string or a comment).
The nodes are those of one parse of the whole file, or the whole file is parsed in one
call as before: when a chunk does not parse into exactly the policies it holds, or code
follows the last ``;`` (which a whole-file parse refuses; a chunk would never see it).
``tests/engine/test_policy_parse.py`` checks the two ways equal on generated bundles and
on text with comments, strings and stray semicolons.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import NamedTuple

import cedarpy
from cedarpy import pst

from pdp.engine.policy_source import PolicySpan

CHUNK_POLICIES = 64
"""Policies per ``policies_to_pst`` call: about 10 ms of generated policies on this
machine's cores, short enough for an event loop waiting on the GIL, long enough that
the calls' own cost stays small."""


def parse_in_chunks(text: str, spans: Sequence[PolicySpan], rest: str) -> pst.PolicySet:
    """The nodes ``cedarpy.policies_to_pst(text)`` gives (ids ``policy<N>`` and order
    included), parsed a chunk at a time; ``spans`` and ``rest`` are
    :func:`pdp.engine.policy_source.split_with_rest` of ``text``.

    Raises ``ValueError`` as ``policies_to_pst(text)`` does.
    """
    return _assemble(text, _cut(spans, rest, CHUNK_POLICIES),
                     lambda chunk: cedarpy.policies_to_pst(chunk.code))


def parse_ahead(text: str, spans: Sequence[PolicySpan], rest: str,
                helper: Executor) -> Callable[[], pst.PolicySet]:
    """Start Cedar's parse of ``text`` in ``helper``, :data:`CHUNK_POLICIES_AHEAD`
    policies per call with the GIL released; the function returned gives
    :func:`parse_in_chunks`' nodes, turning each chunk into nodes as its parse is done.

    For a start, which has a core to spare: a whole file parsed before it was turned
    into nodes kept the loading thread waiting for all of the parse (0.3 s at 10,000
    policies); now it waits for the first chunk only. The function raises
    ``ValueError`` as ``policies_to_pst(text)`` does.
    """
    chunks = _cut(spans, rest, CHUNK_POLICIES_AHEAD)
    parses = [helper.submit(_parse, chunk.code) for chunk in chunks]
    by_start = {chunk.start: parse for chunk, parse in zip(chunks, parses, strict=True)}
    return lambda: _assemble(text, chunks, lambda chunk: by_start[chunk.start].result().to_pst())


CHUNK_POLICIES_AHEAD = 500
"""Policies per parse of :func:`parse_ahead`: ~15 ms of Cedar's work, the longest this
thread waits; few enough calls that their own cost stays small."""


def _parse(code: str) -> cedarpy.PolicySet:
    """Cedar's parse of ``code``; its ``to_pst()`` is ``cedarpy.policies_to_pst(code)``,
    the parse being the part of that call which needs no GIL."""
    return cedarpy.PolicySet.from_str(code, release_gil=True)


class _Chunk(NamedTuple):
    start: int  # the number of its first policy in the file
    size: int  # how many policies it holds
    code: str  # theirs, without comments


def _cut(spans: Sequence[PolicySpan], rest: str, size: int) -> list[_Chunk]:
    """The chunks of ``size`` policies; none when the file must be parsed whole (no
    policy found, or code after the last one)."""
    if not spans or rest.strip():
        return []
    return [_Chunk(start, len(part), "\n".join(span.code for span in part))
            for start in range(0, len(spans), size) if (part := spans[start:start + size])]


def _assemble(text: str, chunks: Sequence[_Chunk],
              to_nodes: Callable[[_Chunk], pst.PolicySet]) -> pst.PolicySet:
    """One node set of ``to_nodes`` of each chunk (in order), numbered as in the whole
    file; the whole file's own ``policies_to_pst`` where there are no chunks or one does
    not give exactly the policies it holds."""
    if not chunks:
        return cedarpy.policies_to_pst(text)
    static: dict[str, pst.Template] = {}
    templates: dict[str, pst.Template] = {}
    for chunk in chunks:
        try:
            parsed = to_nodes(chunk)
        except ValueError:
            return cedarpy.policies_to_pst(text)  # Cedar's error for the whole file
        if len(parsed.static_policies) + len(parsed.templates) != chunk.size:
            return cedarpy.policies_to_pst(text)
        for into, group in ((static, parsed.static_policies), (templates, parsed.templates)):
            for local_id, node in group.items():
                # Cedar numbered the chunk from policy0; the file numbers it from `start`.
                cedar_id = f"policy{chunk.start + int(local_id.removeprefix('policy'))}"
                into[cedar_id] = (node if chunk.start == 0
                                  else dataclasses.replace(node, id=cedar_id))
    # Whole-file order: every static policy by number, then every template by number.
    return pst.PolicySet(templates=templates, static_policies=static, template_links=())


def policy_set_in_chunks(files: Sequence[tuple[str, Sequence[PolicySpan]]],
                         ids: Mapping[tuple[str, str], str]) -> cedarpy.PolicySet:
    """The policy set ``PolicySet.from_pst`` builds from the loader's nodes, built without
    holding the GIL for more than a chunk at a time.

    ``from_pst`` reads every node with the GIL held (about half a second at 10,000
    policies, a stall of every request in flight during a reload). Here Cedar writes
    each chunk in its JSON policy format (EST), the policies are keyed by their ids
    (``ids``: ``(file, "policy<N>")`` to the id the bundle gives that policy; a policy
    not in ``ids`` is left out, as the loader leaves it out of the nodes), and Cedar
    builds the set from that document with the GIL released. About twice the work of
    ``from_pst`` in all: for a reload beside a serving event loop, not for a start.

    ``files``: each ``*.cedar`` file's name and spans, which must be the policies Cedar
    parsed from it (the loader checks their count).
    """
    parts: dict[str, list[str]] = {"staticPolicies": [], "templates": []}
    for name, spans in files:
        for start in range(0, len(spans), CHUNK_POLICIES):
            chunk = spans[start:start + CHUNK_POLICIES]
            est = json.loads(cedarpy.policies_to_json_str("\n".join(s.code for s in chunk)))
            for kind, into in parts.items():
                for local_id, policy in est[kind].items():
                    policy_id = ids.get((name, f"policy{start + int(local_id[len('policy'):])}"))
                    if policy_id is not None:
                        into.append(f"{json.dumps(policy_id)}:{json.dumps(policy)}")
    document = ('{"staticPolicies":{' + ",".join(parts["staticPolicies"]) + '},"templates":{'
                + ",".join(parts["templates"]) + '},"templateLinks":[]}')
    return cedarpy.PolicySet.from_json_str(document, release_gil=True)
