"""Why-not explanations: computed by Cedar, with the values involved."""

from __future__ import annotations

from pathlib import Path

import cedarpy
from cedarpy import pst
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from context.model import LiveSnapshot
from pdp.authoring.policytests import case_identity
from pdp.decision.decide import cedar_context, decide, principal_entity
from pdp.decision.model import ResourceRef
from pdp.engine import cedar_call, load_bundle
from pdp.engine.evaluate import EntityInput, EvalRequest, evaluate
from tests.conftest import MONDAY_10, examples
from tests.decision.strategies import (
    actions,
    contexts,
    contexts_for,
    identity_of,
    lives,
    principals,
    resources,
)


def _live(**kw) -> LiveSnapshot:
    return LiveSnapshot(**{"now": MONDAY_10, "incident": False, "risk_level": 0,
                           "business_hours": True, **kw})


def _decide(bundle, principal, action, rtype, rid, *, live=None, context=None, explain=None,
            **principal_kw):
    identity = case_identity({"principal": {"id": principal, **principal_kw}}, MONDAY_10)
    return decide(bundle, identity=identity, action=action, resource=ResourceRef(rtype, rid),
                  context=context or {}, live=live or _live(), now=MONDAY_10, explain=explain)


def test_a_false_condition_of_a_matching_permit_is_named_with_its_values(example_bundle) -> None:
    d = _decide(example_bundle, "spiffe://example.org/services/checkout", "call", "App::Api",
                "billing", scopes=["inventory:call"])
    assert d.decision == "deny"
    (diag,) = d.diagnosis
    assert diag.policy.id == "api.call.scoped" and diag.scope_matched and not diag.applies
    (cond,) = diag.blocking
    assert cond.condition.text == "principal.scopes.contains(resource.scope)"
    assert cond.held is False
    assert cond.values == {"principal.scopes": ["inventory:call"], "resource.scope": "billing:call"}
    assert ("`principal.scopes.contains(resource.scope)` was false (principal.scopes is "
            '["inventory:call"], resource.scope is "billing:call")') in d.explanation
    assert "Ask the issuer for a token with the API's scope." in d.explanation


def test_no_matching_permit_scope_is_said_plainly(example_bundle) -> None:
    d = _decide(example_bundle, "spiffe://example.org/services/etl", "write", "App::Dataset",
                "ledger")
    assert d.diagnosis == ()
    assert d.explanation.endswith("No permit policy applies to this principal, action and resource.")


def test_a_forbid_names_the_conditions_that_held_with_values(example_bundle) -> None:
    d = _decide(example_bundle, "spiffe://example.org/services/admin-console", "delete",
                "App::Dataset", "ledger", live=_live(risk_level=2))
    assert d.reason_codes == ("policy.forbid",)
    assert ("Denied by policy guard.risk.elevated: At high or critical risk, elevated actions are "
            "denied, because `context.live.risk_level >= 2` held (context.live.risk_level is 2). "
            "Retry when the risk level is back below high.") == d.explanation


def test_a_forbid_with_an_exception_says_the_exception_did_not_hold(example_bundle) -> None:
    d = _decide(example_bundle, "spiffe://example.org/services/etl", "write", "App::Dataset",
                "customer-pii", live=_live(incident=True))
    assert d.reasons[0].policy == "guard.incident.sensitive-writes"
    assert "`context.live.incident` held (context.live.incident is true)" in d.explanation
    assert "`resource.sensitive` held (resource.sensitive is true)" in d.explanation
    assert '`principal in Pdp::Group::"incident-responders"` was false' in d.explanation


def test_an_evaluation_error_names_the_policy_and_the_missing_attribute(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema").write_text(
        "entity Doc = { owner: String }; action view appliesTo { principal: Pdp::Workload, "
        "resource: Doc };")
    (tmp_path / "p.cedar").write_text(
        '@id("doc.view.owner") @reason("Owners may view their documents.")\n'
        'permit(principal, action == Action::"view", resource) '
        'when { resource.owner == principal.path };\n')
    bundle = load_bundle(tmp_path)
    d = _decide(bundle, "spiffe://example.org/x", "view", "Doc", "d1")
    assert d.decision == "deny"
    (diag,) = d.diagnosis
    (cond,) = diag.blocking
    # Doc::"d1" is neither in entities.json nor described by the PEP: no `owner`.
    assert cond.held is None and 'entity `Doc::"d1"` does not exist' in (cond.error or "")
    assert "`resource.owner == principal.path` could not be evaluated" in d.explanation
    assert any(e.policy == "doc.view.owner" for e in d.errors)


def test_allows_are_not_diagnosed_unless_asked(example_bundle) -> None:
    plain = _decide(example_bundle, "spiffe://example.org/services/etl", "read", "App::Dataset",
                    "sales-daily")
    assert plain.decision == "allow" and plain.diagnosis == ()
    asked = _decide(example_bundle, "spiffe://example.org/services/etl", "read", "App::Dataset",
                    "sales-daily", explain=True)
    assert [d.policy.id for d in asked.diagnosis] == ["dataset.pipelines.read-write"]
    assert asked.diagnosis[0].applies


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(principal=principals, age_s=st.integers(0, 900), action=actions, resource=resources,
       context=contexts, live=lives)
def test_making_the_named_conditions_true_turns_the_permit_on(
        example_bundle, principal, age_s, action, resource, context, live) -> None:
    """For every deny it explains: each diagnosed permit applies once its named blocking
    conditions are taken as satisfied, and not before."""
    identity = identity_of(principal, age_s)
    context = contexts_for(action, context)
    d = decide(example_bundle, identity=identity, action=action, resource=resource,
               context=context, live=live, now=MONDAY_10)
    if d.decision != "deny" or not d.diagnosis:
        return
    action_info = example_bundle.actions.resolve(action)
    request = EvalRequest(principal=principal_entity(identity), action=action_info,
                          resource=EntityInput(resource.type, resource.id, resource.attrs,
                                               resource.parents),
                          context=cedar_context(action_info, context, live, identity, MONDAY_10))
    entities = evaluate(example_bundle, request).entities
    for diag in d.diagnosis:
        if diag.policy.effect != "permit":
            continue
        event("diagnosed permit with blocking conditions" if diag.blocking else "applies")
        kept = [c.condition for c in diag.conditions if not c.blocking]
        assert _probe_holds(example_bundle, diag.policy.node, kept, request, entities)
        if diag.blocking:
            every = [c.condition for c in diag.conditions]
            assert not _probe_holds(example_bundle, diag.policy.node, every, request, entities)


def _probe_holds(bundle, node, conditions, request, entities) -> bool:
    clauses = tuple(pst.When(c.expr) if c.clause == "when" else pst.Unless(c.expr)
                    for c in conditions)
    probe = pst.Template(id="probe", effect="permit", principal=node.principal,
                         action=node.action, resource=node.resource, clauses=clauses,
                         annotations=pst.FrozenMap({}))
    policy_set = cedarpy.PolicySet.from_pst(
        pst.PolicySet(templates={}, static_policies={"probe": probe}, template_links=()))
    result = cedar_call.is_authorized(
        request.principal.uid, {"type": request.action.type, "id": request.action.id},
        request.resource.uid, request.context, policy_set, entities, bundle.schema)
    return result.allowed


RICH_SCHEMA = """
entity Doc = { level: Long, tags: Set<String>, owner: String };
action view, edit appliesTo {
  principal: Pdp::Workload, resource: Doc,
  context: { ip_ok: Bool, hour: Long, live: Pdp::Live },
};
"""
RICH_POLICIES = """
@id("view.cleared") @reason("Cleared views.")
permit(principal, action == Action::"view", resource)
when { resource.level <= 2 && context.ip_ok && context.hour >= 8 }
unless { resource.tags.contains("secret") || context.live.incident };

@id("edit.owner") @reason("Owners edit in office hours.")
permit(principal, action == Action::"edit", resource)
when { resource.owner == principal.path && context.hour < 18 }
unless { context.live.risk_level > 1 };

@id("view.scoped") @reason("Scoped readers view public docs.")
permit(principal, action == Action::"view", resource)
when { principal.scopes.contains("docs:read") && resource.tags.containsAny(["public", "internal"]) };

@id("edit.frozen") @reason("Frozen docs are not edited.")
forbid(principal, action == Action::"edit", resource) when { resource.tags.contains("frozen") };
"""


def _rich_bundle(tmp_path_factory) -> object:
    d = tmp_path_factory.mktemp("rich")
    (d / "schema.cedarschema").write_text(RICH_SCHEMA)
    (d / "p.cedar").write_text(RICH_POLICIES)
    return load_bundle(d)


_RICH: list = []

rich_docs = st.builds(
    lambda level, tags, owner: ResourceRef("Doc", "d", attrs={
        "level": level, "tags": sorted(tags), "owner": owner}),
    st.integers(0, 4), st.sets(st.sampled_from(["secret", "public", "internal", "frozen"])),
    st.sampled_from(["/a", "/b"]))
rich_contexts = st.fixed_dictionaries({"ip_ok": st.booleans(), "hour": st.integers(0, 23)})


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["a", "b"]), scopes=st.sets(st.sampled_from(["docs:read", "x"])),
       action=st.sampled_from(["view", "edit"]), resource=rich_docs, context=rich_contexts,
       incident=st.booleans(), risk=st.integers(0, 3))
def test_named_conditions_turn_permits_on_over_multi_part_clauses(
        tmp_path_factory, path, scopes, action, resource, context, incident, risk) -> None:
    if not _RICH:
        _RICH.append(_rich_bundle(tmp_path_factory))
    bundle = _RICH[0]
    identity = case_identity({"principal": {"id": f"spiffe://example.org/{path}",
                                            "scopes": sorted(scopes)}}, MONDAY_10)
    live = _live(incident=incident, risk_level=risk)
    d = decide(bundle, identity=identity, action=action, resource=resource, context=context,
               live=live, now=MONDAY_10)
    if d.decision != "deny":
        return
    action_info = bundle.actions.resolve(action)
    request = EvalRequest(principal=principal_entity(identity), action=action_info,
                          resource=EntityInput(resource.type, resource.id, resource.attrs),
                          context=cedar_context(action_info, context, live, identity, MONDAY_10))
    entities = evaluate(bundle, request).entities
    for diag in d.diagnosis:
        kept = [c.condition for c in diag.conditions if not c.blocking]
        if diag.policy.effect == "permit":
            event(f"permit blocked by {len(diag.blocking)}")
            assert diag.blocking
            assert _probe_holds(bundle, diag.policy.node, kept, request, entities)
            every = [c.condition for c in diag.conditions]
            assert not _probe_holds(bundle, diag.policy.node, every, request, entities)
            if d.reason_codes == ("policy.no_permit",):
                # The sentence names every permit it diagnosed (at most 3 here) and why.
                assert f"Policy {diag.policy.id} " in d.explanation
                for c in diag.blocking:
                    assert f"`{c.condition.text}`" in d.explanation
        else:
            event("forbid")
            assert _probe_holds(bundle, diag.policy.node, kept, request, entities)
