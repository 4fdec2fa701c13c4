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
from collections.abc import Mapping, Sequence

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
    if not spans or rest.strip():
        return cedarpy.policies_to_pst(text)
    static: dict[str, pst.Template] = {}
    templates: dict[str, pst.Template] = {}
    for start in range(0, len(spans), CHUNK_POLICIES):
        chunk = spans[start:start + CHUNK_POLICIES]
        try:
            parsed = cedarpy.policies_to_pst("\n".join(span.code for span in chunk))
        except ValueError:
            return cedarpy.policies_to_pst(text)  # Cedar's error for the whole file
        if len(parsed.static_policies) + len(parsed.templates) != len(chunk):
            return cedarpy.policies_to_pst(text)
        for into, group in ((static, parsed.static_policies), (templates, parsed.templates)):
            for local_id, node in group.items():
                # Cedar numbered the chunk from policy0; the file numbers it from `start`.
                cedar_id = f"policy{start + int(local_id.removeprefix('policy'))}"
                into[cedar_id] = node if start == 0 else dataclasses.replace(node, id=cedar_id)
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
