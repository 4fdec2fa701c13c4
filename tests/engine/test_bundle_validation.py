"""Which Cedar bundles load, and what `pdp validate` says about those that do not.

A bundle valid against its own schema loads: the PDP's admin actions do not
leak into validation of policies that are not about them, yet an open-action
policy still applies to admin requests exactly as Cedar evaluates it.
"""

from __future__ import annotations

import json
from pathlib import Path

import cedarpy
import pytest

from context.model import LiveSnapshot
from pdp.authoring.policytests import case_identity
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine import BundleInvalid, load_bundle
from tests.cedar_reference import determining_ids, raw_decision
from tests.conftest import MONDAY_10

GUARD = "forbid (principal, action, resource) unless { context.authenticated };\n"
LIVE = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)


def _problems(directory: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(directory)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def authenticated_bundle(bundle_copy) -> Path:
    """The example bundle, with `authenticated: Bool` in the context of every App action."""
    d = bundle_copy()
    schema = d / "schema.cedarschema"
    text = schema.read_text().replace("purpose?: String,", "purpose?: String,\n    authenticated: Bool,")
    text = text.replace("method?: String,", "method?: String,\n      authenticated: Bool,")
    schema.write_text(text)
    return d


def test_an_open_action_guard_on_the_bundles_own_context_loads(authenticated_bundle) -> None:
    (authenticated_bundle / "guard.cedar").write_text(GUARD)
    bundle = load_bundle(authenticated_bundle)
    assert "guard.cedar#0" in bundle.policies


def test_the_guard_is_a_warning_because_it_locks_out_admin_actions(authenticated_bundle) -> None:
    (authenticated_bundle / "guard.cedar").write_text(GUARD)
    warnings = [str(w) for w in load_bundle(authenticated_bundle).warnings]
    admin = [w for w in warnings if "admin actions too" in w]
    assert len(admin) == 1, warnings
    assert admin[0].startswith("guard.cedar:1: policy 'guard.cedar#0': ")
    assert "`authenticated`" in admin[0] and "engine.error" in admin[0]


def _admin_decisions(directory: Path, groups: list[str]):
    """The PDP's decision and raw Cedar's (the bundle's text, full schema) on policy.reload."""
    bundle = load_bundle(directory)
    identity = case_identity({"principal": {"id": "spiffe://example.org/ops/console",
                                            "groups": groups}}, MONDAY_10)
    resource = ResourceRef(type="Pdp::Admin", id="policy")
    ours = decide(bundle, identity=identity, action='Pdp::Action::"policy.reload"',
                  resource=resource, context={}, live=LIVE, now=MONDAY_10)
    text = "\n".join(p.read_text() for p in sorted(directory.glob("*.cedar")))
    raw = raw_decision((directory / "schema.cedarschema").read_text(),
                       cedarpy.PolicySet.from_str(text),
                       json.loads((directory / "entities.json").read_text()),
                       identity=identity, action=("Pdp::Action", "policy.reload"),
                       schema=bundle.schema,
                       resource=resource, context={}, live=LIVE, now=MONDAY_10)
    return ours, raw


def test_an_open_forbid_that_errors_on_an_admin_action_denies_it_fail_closed(
        authenticated_bundle) -> None:
    (authenticated_bundle / "guard.cedar").write_text(GUARD)
    ours, raw = _admin_decisions(authenticated_bundle, ["policy-admins"])
    # Cedar skips the erroring forbid and allows; the PDP's documented rule denies.
    assert raw.allowed and raw.diagnostics.errors
    assert ours.decision == "deny" and "engine.error" in ours.reason_codes
    assert any(e.policy == "guard.cedar#0" for e in ours.errors)


def test_an_open_forbid_applies_to_admin_actions_exactly_as_cedar_decides(
        authenticated_bundle) -> None:
    (authenticated_bundle / "guard.cedar").write_text(
        '@id("guard.console") @reason("The console may not reload.")\n'
        'forbid (principal, action, resource) when { principal.path == "/ops/console" };\n')
    ours, raw = _admin_decisions(authenticated_bundle, ["policy-admins"])
    assert not raw.allowed and determining_ids(raw) == ["guard.console"]
    assert ours.decision == "deny" and [r.policy for r in ours.reasons] == ["guard.console"]
    (authenticated_bundle / "guard.cedar").write_text(
        '@id("guard.console") @reason("Another console may not reload.")\n'
        'forbid (principal, action, resource) when { principal.path == "/ops/other" };\n')
    ours, raw = _admin_decisions(authenticated_bundle, ["policy-admins"])
    assert raw.allowed and ours.decision == "allow"
    assert sorted(r.policy for r in ours.reasons) == determining_ids(raw)


def test_an_admin_policy_is_still_validated_against_the_admin_actions(bundle_copy) -> None:
    d = bundle_copy()
    (d / "bad_admin.cedar").write_text(
        '@id("admin.typo") @reason("r")\n'
        'permit (principal, action == Pdp::Action::"policy.reload", resource)\n'
        'when { context.credential.age < 300 };\n')
    problems = _problems(d)
    assert len(problems) == 1
    assert problems[0].startswith("bad_admin.cedar:1: policy 'admin.typo': ")
    assert "`credential.age`" in problems[0]


def test_one_mistyped_attribute_is_one_problem_with_file_line_and_own_id(bundle_copy) -> None:
    d = bundle_copy()
    (d / "typo.cedar").write_text(
        '// a comment; with a semicolon\n'
        '@id("x.ok") @reason("fine") permit (principal, action == App::Action::"read", resource);\n'
        '\n'
        '@id("x.typo")\n@reason("typo")\n'
        'permit (principal, action, resource) when { context.live.risk_levle < 2 };\n')
    problems = _problems(d)
    assert len(problems) == 1, problems
    assert problems[0].startswith("typo.cedar:4: policy 'x.typo': ")
    assert "risk_levle" in problems[0] and "policy0" not in problems[0]
    assert "policy1" not in problems[0]


def test_a_policy_without_id_is_named_by_its_file_and_position(bundle_copy) -> None:
    d = bundle_copy()
    (d / "extra.cedar").write_text(
        '@id("x.first") @reason("r") permit (principal, action == App::Action::"read", resource);\n'
        'permit (principal, action == App::Action::"read", resource)\n'
        'when { context.live.risk_levle < 2 };\n')
    problems = _problems(d)
    assert len(problems) == 1
    assert problems[0].startswith("extra.cedar:2: policy 'extra.cedar#1': ")
    assert "risk_levle" in problems[0]


def test_a_cedar_parse_error_names_the_line(bundle_copy) -> None:
    d = bundle_copy()
    (d / "broken.cedar").write_text(
        'permit (principal, action, resource);\n\npermit (principal, actoin, resource);\n')
    assert _problems(d) == ["broken.cedar:3: does not parse: "
                            "found an invalid variable in the policy scope: actoin"]


def test_ids_are_any_string_cedar_accepts_within_bounds(bundle_copy) -> None:
    d = bundle_copy()
    (d / "ids.cedar").write_text(
        '@id("Role-A policy") @reason("r")\n'
        'permit (principal, action == App::Action::"read", resource == App::Dataset::"");\n')
    bundle = load_bundle(d)
    assert bundle.policies["Role-A policy"].line == 1
    (d / "ids.cedar").write_text(
        '@id("bad\\nid") @reason("r") permit (principal, action == App::Action::"read", resource);\n'
        f'@id("{"x" * 129}") @reason("r") permit (principal, action == App::Action::"read", resource);\n')
    problems = _problems(d)
    assert len(problems) == 2 and all("without control characters" in p for p in problems)


def test_a_policy_cedar_parses_but_its_validator_refuses_is_reported_as_cedar_does(
        bundle_copy) -> None:
    d = bundle_copy()
    (d / "net.cedar").write_text(
        '@id("net.multicast") @reason("r")\n'
        'permit (principal, action == App::Action::"read", resource)\n'
        'when { ip("10.0.0.1").isMulticast(1, 2) };\n')
    assert _problems(d) == ["net.cedar:1: policy 'net.multicast': wrong number of arguments in "
                            "extension function application. Expected 1, got 3"]


def _own_bundle(tmp_path: Path, schema: str) -> Path:
    (tmp_path / "schema.cedarschema").write_text(
        schema + "entity Doc;\naction view appliesTo { principal: Pdp::Workload, resource: Doc };\n")
    (tmp_path / "p.cedar").write_text(
        '@id("all") @reason("r") permit (principal is Pdp::Workload, action, resource);\n')
    return tmp_path


def _reload(bundle, groups: list[str]):
    identity = case_identity({"principal": {"id": "spiffe://example.org/ops/console",
                                            "groups": groups}}, MONDAY_10)
    return decide(bundle, identity=identity, action='Pdp::Action::"policy.reload"',
                  resource=ResourceRef(type="Pdp::Admin", id="policy"), context={},
                  live=LIVE, now=MONDAY_10)


def test_a_top_level_group_displaces_pdp_group_and_the_bundle_loads(tmp_path: Path) -> None:
    bundle = load_bundle(_own_bundle(tmp_path, "entity Group;\n"))
    assert any("Pdp::Group is left out" in str(w) for w in bundle.warnings)
    assert _reload(bundle, ["sre"]).decision == "allow"


def test_a_top_level_admin_displaces_the_admin_actions_which_then_deny(tmp_path: Path) -> None:
    bundle = load_bundle(_own_bundle(tmp_path, "entity Admin;\n"))
    assert any("Pdp::Admin is left out, and with it the admin actions" in str(w)
               for w in bundle.warnings)
    decision = _reload(bundle, [])
    assert decision.decision == "deny" and "request.unknown_action" in decision.reason_codes
