"""Evaluate one request against a loaded bundle with Cedar.

Cedar skips a policy whose condition raises an error. For a ``permit`` that is
already safe (it grants nothing), but a ``forbid`` that errored might have
applied, so we fail closed: the request is denied and the forbid is named in
``errored_forbids``. This is the one place our decision can differ from raw
Cedar, and only towards deny.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import cedarpy
import orjson

from pdp.engine import cedar_call
from pdp.engine.actions import ActionInfo, Uid
from pdp.engine.bundle import Bundle
from pdp.engine.cache_budget import POLICY_COPY_BYTES
from pdp.engine.cedar_call import CedarResult
from pdp.engine.context_reads import Reads, read_part
from pdp.engine.entity_slice import references
from pdp.engine.grants import Grant, linked_policy_set
from pdp.engine.pdp_schema import WORKLOAD_TYPE
from pdp.engine.request_shapes import PROBE_ID, poisoned
from pdp.engine.slicing import link

_POLICY_IN_ERROR = re.compile(r"policy `([^`]+)`")


@dataclass(frozen=True, slots=True)
class EntityInput:
    """A request entity: uid, and attributes/parents when the caller supplies them."""

    type: str
    id: str
    attrs: Mapping[str, Any] | None = None
    parents: tuple[Uid, ...] = ()
    # Hashable value that determines attrs and parents (e.g. the verified identity),
    # so the engine can reuse the entity handle it built for it.
    cache_key: Hashable | None = None
    # A principal the PEP describes (an AuthZEN asserted subject of its own type):
    # added like a PEP-described resource, its attributes checked against the schema.
    pep_described: bool = False

    @property
    def uid(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}


@dataclass(frozen=True, slots=True)
class EvalRequest:
    principal: EntityInput
    action: ActionInfo
    resource: EntityInput
    context: Mapping[str, Any]
    # The PEP's own part of ``context`` (the rest is built by the PDP); when given,
    # requests of a shape already checked against the schema skip that check, and only
    # it is searched for the entities a request names.
    pep_context: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PolicyError:
    """An evaluation error, with the policy that raised it when Cedar names one."""

    message: str
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    allowed: bool
    determining: tuple[str, ...] = ()
    errors: tuple[PolicyError, ...] = ()
    errored_forbids: tuple[str, ...] = ()
    # Set when the input itself was refused (schema mismatch): nothing was evaluated.
    request_error: str | None = None
    cedar_allowed: bool = field(default=False)
    # The entities the request was evaluated against, for explanations.
    entities: cedarpy.Entities | None = field(default=None, compare=False, repr=False)
    # The slice of policies whose scope could match (None: the whole bundle was evaluated).
    candidates: frozenset[str] | None = field(default=None, compare=False, repr=False)


def evaluate(bundle: Bundle, request: EvalRequest,
             policy_set: cedarpy.PolicySet | None = None,
             extra_effects: Mapping[str, str] | None = None,
             grants: Sequence[Grant] = ()) -> Evaluation:
    """Decide ``request`` with Cedar. Never raises: failures come back in the ``Evaluation``.

    ``grants`` are linked from the bundle's templates. On a large bundle only the slice
    of policies whose scope can match is evaluated (``pdp.engine.slicing``).
    ``policy_set`` overrides the policies altogether, and ``extra_effects`` gives the
    effect of policies not in the bundle.
    """
    if grants:
        extra_effects = {**(extra_effects or {}), **{
            g.link_id: bundle.policies[g.template].effect
            for g in grants if g.template in bundle.policies}}
    problem = _check_static_conflict(bundle, request.resource)
    if not problem and request.principal.pep_described:
        problem = _check_static_conflict(bundle, request.principal)
    if problem:
        return Evaluation(allowed=False, request_error=problem)
    try:
        entities = _entities_for(bundle, request)
    except (ValueError, TypeError) as e:  # TypeError: orjson refuses the value (a huge int)
        return Evaluation(allowed=False, request_error=f"entities do not match the schema: {e}")
    try:
        candidates, reads, weight = None, None, None
        if policy_set is None:
            policy_set, candidates, reads = _policies_for(bundle, request, grants)
            weight = _policy_weight(bundle, candidates, grants)
        result = _authorize(bundle, request, policy_set, entities, reads, weight)
    except Exception as e:  # noqa: BLE001 - the engine must hand back a value, never raise
        return Evaluation(allowed=False, request_error=f"cedar failed: {e}")
    return _to_evaluation(bundle, result, entities, extra_effects or {}, candidates)


def _authorize(bundle: Bundle, request: EvalRequest, policy_set: cedarpy.PolicySet,
               entities: cedarpy.Entities, reads: Reads | None = None,
               policy_weight: int | None = None) -> CedarResult:
    """Cedar's answer; with the schema unless this request's shape is known to need none,
    and then with only the context the policies can read (``reads``, when known).

    With ``policy_weight`` (the memory holding ``policy_set`` may keep alive) the answer
    comes from the bundle's memo of Cedar's answers when the same question was asked
    (``pdp.engine.answer_memo``); without it (policies the caller chose), from Cedar.
    """
    ask = cedar_call.is_authorized if policy_weight is None else partial(
        bundle.answers.is_authorized, policy_weight=policy_weight)
    principal, action, resource = (request.principal.uid, request.action.cedar_json,
                                   request.resource.uid)
    key = None
    if request.pep_context is not None:
        key = bundle.shapes.key(request.action.uid, request.principal.type,
                                request.resource.type, request.pep_context)
        verdict = bundle.shapes.verdict(key)
        if verdict is True:
            context = request.context if reads is None else read_part(request.context, reads)
            return ask(principal, action, resource, context, policy_set, entities, None)
        if verdict is False:
            key = None  # already checked: this shape needs the schema
    args = (principal, action, resource, request.context, policy_set, entities)
    result = ask(*args, bundle.schema)
    if key is not None and result.decision != "NoDecision":
        # A refused request proves nothing about its shape; an evaluated one does.
        bundle.shapes.remember(key, _schema_free(bundle, request, args, result))
    return result


def _policy_weight(bundle: Bundle, candidates: frozenset[str] | None,
                   grants: Sequence[Grant]) -> int:
    """What a memoized answer's hold on the policy set it was asked of may cost: nothing
    for the bundle's own set, a copy of each policy for a slice or a linked set (counted
    though their own memos usually hold them too: the bound errs on the safe side)."""
    if candidates is not None:
        return len(candidates) * POLICY_COPY_BYTES
    return (len(bundle.policies) + len(grants)) * POLICY_COPY_BYTES if grants else 0


def _schema_free(bundle: Bundle, request: EvalRequest, args: tuple[Any, ...],
                 result: CedarResult) -> bool:
    """Whether the schema cannot change the answer to any request of this one's shape
    (the two checks of ``pdp.engine.request_shapes``)."""
    principal, action, resource, context, policy_set, entities = args
    if not cedar_call.is_authorized(principal, action, resource, context, policy_set, entities,
                                    None).same_answer(result):
        return False
    probe = cedar_call.is_authorized(
        {**principal, "id": PROBE_ID}, action, {**resource, "id": PROBE_ID},
        {**context, **poisoned(dict(request.pep_context or {}))}, policy_set, entities,
        bundle.schema)
    return probe.decision != "NoDecision"


def _entities_for(bundle: Bundle, request: EvalRequest) -> cedarpy.Entities:
    """The entities Cedar evaluates against (raises ValueError on a schema mismatch,
    TypeError on a value JSON cannot hold)."""
    principal = request.principal
    resource = _resource_entity(bundle, request.resource)
    if bundle.entity_slicer is not None:
        def own() -> list[dict[str, Any]]:
            mine = (_resource_entity(bundle, principal) if principal.pep_described
                    else _principal_entity(bundle, principal))
            # Attributes from the PEP are checked against the schema (by from_json_str).
            return [e for e in (mine, resource) if e is not None]

        # Entities the context names are reached from too (``context.doc in Folder::"x"``);
        # what the PDP adds to the PEP's context (live, credential) names none.
        given = request.pep_context if request.pep_context is not None else request.context
        # Most PEPs send no context: skip the walk (a share of a decision at 10,000
        # policies, where every request takes this path; bench/RESULTS.md, branch hflat).
        named = tuple(sorted(set(references(given)))) if given else ()
        # The principal's uid is in the key: a principal the PEP asserts without
        # attributes has no entity of its own, but its static ancestors differ.
        key = ((principal.type, principal.id),
               principal.cache_key if principal.cache_key is not None
               else orjson.dumps(own()[:1]),
               request.resource.type, request.resource.id,
               orjson.dumps(resource) if resource is not None else None, named)
        sliced: cedarpy.Entities = bundle.entity_slicer.entities(
            key, own, roots=[(principal.type, principal.id),
                             (request.resource.type, request.resource.id), *named])
        return sliced
    cache = bundle.principal_entities
    if principal.pep_described:
        described = _resource_entity(bundle, principal)
        principal_key: Hashable = "base"
        entities = cache.base
        if described is not None:
            # Attributes from the PEP are checked against the schema before use.
            described_json = orjson.dumps([described])
            principal_key = ("described", described_json)
            entities = cache.with_described("base", lambda: cache.base, described_json,
                                            bundle.schema)
    else:
        def principal_json() -> str:
            return json.dumps([_principal_entity(bundle, principal)])

        principal_key = (principal.cache_key if principal.cache_key is not None
                         else principal_json())
        entities = cache.with_principal(principal_key, principal_json)
    if resource is not None:
        # Attributes from the PEP are checked against the schema before use.
        with_principal = entities
        entities = cache.with_described(principal_key, lambda: with_principal,
                                        orjson.dumps([resource]), bundle.schema)
    return entities


def _policies_for(bundle: Bundle, request: EvalRequest, grants: Sequence[Grant],
                  ) -> tuple[cedarpy.PolicySet, frozenset[str] | None, Reads | None]:
    """The whole bundle (one policy), or the slice whose scopes can match the request;
    with what of the context its policies can read (None: all of it, or not known)."""
    if bundle.index is None:
        return (linked_policy_set(bundle, grants) if grants else bundle.policy_set), None, None
    links = {g.link_id: link(bundle.policies[g.template].node, g.link_id,
                             (WORKLOAD_TYPE, g.principal), (g.resource_type, g.resource_id))
             for g in grants
             if g.template in bundle.policies and bundle.policies[g.template].is_template}
    principal, resource = request.principal, request.resource
    index = bundle.index

    def candidates() -> frozenset[str]:
        return index.candidates(
            (principal.type, principal.id), _ancestors(bundle, principal),
            bundle.actions.ancestors(request.action.uid) | {request.action.uid},
            (resource.type, resource.id), _ancestors(bundle, resource), extra=links)

    if not links:
        found = index.scope_slice((principal.type, principal.id, principal.parents,
                                   request.action.uid, resource.type, resource.id,
                                   resource.parents), candidates)
        return found.policies, found.ids, found.context_reads
    ids = candidates()
    return index.slice(ids, links), ids, None


def _ancestors(bundle: Bundle, entity: EntityInput) -> frozenset[Uid]:
    """Everything ``entity`` is in: its own parents (from the request) and the static ones."""
    found: frozenset[Uid] = (bundle.graph.ancestors_of_all(entity.parents)
                             | bundle.graph.ancestors((entity.type, entity.id)))
    return found


def _to_evaluation(bundle: Bundle, result: CedarResult, entities: cedarpy.Entities,
                   extra_effects: Mapping[str, str],
                   candidates: frozenset[str] | None = None) -> Evaluation:
    if result.decision == "NoDecision":
        # Cedar refuses to build the request (context or entity types off the schema).
        message = "; ".join(result.errors) or "request does not match the schema"
        return Evaluation(allowed=False, request_error=message)
    errors = tuple(_policy_error(m) for m in result.errors)
    errored_forbids = tuple(sorted({
        e.policy for e in errors
        if e.policy is not None
        and extra_effects.get(e.policy, _effect(bundle, e.policy)) != "permit"}))
    return Evaluation(
        allowed=result.allowed and not errored_forbids,
        determining=result.reasons,
        errors=errors,
        errored_forbids=errored_forbids,
        cedar_allowed=result.allowed,
        entities=entities,
        candidates=candidates,
    )


def _effect(bundle: Bundle, policy_id: str) -> str | None:
    # An id we cannot place counts as a forbid: when in doubt, deny.
    info = bundle.policies.get(policy_id)
    return info.effect if info is not None else None


def _policy_error(message: str) -> PolicyError:
    match = _POLICY_IN_ERROR.search(message)
    return PolicyError(message=message, policy=match.group(1) if match else None)


def _check_static_conflict(bundle: Bundle, resource: EntityInput) -> str | None:
    if (resource.attrs is not None or resource.parents) and (
            (resource.type, resource.id) in bundle.static_uids):
        return (f"resource {resource.type}::{resource.id!r} is defined by the policy bundle; "
                "send only its type and id")
    return None


def _principal_entity(bundle: Bundle, principal: EntityInput) -> dict[str, Any]:
    """The principal with its own parents plus those entities.json gives it."""
    parents = list(principal.parents) + [
        (p["type"], p["id"]) for p in bundle.workload_parents.get(principal.id, ())]
    return {
        "uid": principal.uid,
        "attrs": dict(principal.attrs or {}),
        "parents": [{"type": t, "id": i} for t, i in dict.fromkeys(parents)],
    }


def _resource_entity(bundle: Bundle, resource: EntityInput) -> dict[str, Any] | None:
    """The resource as the PEP describes it, or None when the bundle (or nobody) defines it."""
    # The cheap test first: most requests name a resource without describing it.
    if (resource.attrs is None and not resource.parents) or (
            (resource.type, resource.id) in bundle.static_uids):
        return None
    return {
        "uid": resource.uid,
        "attrs": dict(resource.attrs or {}),
        "parents": [{"type": t, "id": i} for t, i in resource.parents],
    }
