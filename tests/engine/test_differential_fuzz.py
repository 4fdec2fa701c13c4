"""Differential fuzzing: on generated bundles and request sequences, decide() is Cedar.

For every request of every generated ``Case`` (tests/engine/cedar_bundles.py),
``decide()`` — the entry point every door uses, with its request-shape cache,
entity caches, entity and policy slicing and linked grant sets, after the
identity verifier and its verified-credential cache for half the workloads
(JWT-SVIDs of the dev issuer; a repeated token is a cache hit) — must reach the
decision of raw ``cedarpy.is_authorized`` with the schema on the whole policy
set (tests/cedar_reference.py, built from the request alone), with the same
determining policies and the same erroring policies. The one permitted
difference is the README's "Fail closed on a forbid that errors": such a
request is denied.

Profiles (README "Tests and benchmarks"): the default runs ``FUZZ_EXAMPLES``
cases in ``make test``; ``PDP_FUZZ_PROFILE=deep`` runs 100,000 (or
``PDP_FUZZ_EXAMPLES=N``). Every counterexample found is kept as a named test
in tests/engine/test_fuzz_findings.py.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime
from pathlib import Path

import cedarpy
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, Phase, event, given, settings

from pdp.config import Settings
from pdp.decision.decide import asserted_principal, decide
from pdp.decision.model import AssertedSubject
from pdp.engine import load_bundle
from pdp.engine.bundle import Bundle
from pdp.identity.dev_issuer import DevIssuer
from pdp.identity.model import BearerToken, VerifiedIdentity
from pdp.identity.verifier import IdentityVerifier
from tests.cedar_reference import StaticEntities, determining_ids, raw_decision, static_entities
from tests.conftest import MONDAY_10
from tests.engine.cedar_bundles import Case, Request, cases

PROFILES = {"default": 1000, "deep": 100_000}
PROFILE = os.environ.get("PDP_FUZZ_PROFILE", "default")
FUZZ_EXAMPLES = int(os.environ.get("PDP_FUZZ_EXAMPLES", PROFILES[PROFILE]))
# pytest-timeout's 300 s guards against hangs; a busy shared machine can take longer for
# the default run (about 90 s of CPU), and the deep profile is bounded by its count.
FUZZ_TIMEOUT = 0 if PROFILE == "deep" or "PDP_FUZZ_EXAMPLES" in os.environ else 900
_POLICY_IN_ERROR = re.compile(r"policy `([^`]+)`")


def load_case(case: Case, directory: Path) -> Bundle:
    for name, text in case.files().items():
        (directory / name).write_text(text)
    return load_bundle(directory)


def check_case(case: Case) -> None:
    """Every request of ``case``, in order on one bundle, against raw Cedar."""
    with tempfile.TemporaryDirectory() as directory:
        bundle = load_case(case, Path(directory))
    check_requests(case, bundle)


def check_requests(case: Case, bundle: Bundle) -> None:
    """Every request of ``case``, in order on ``bundle`` (loaded from its files), against
    raw Cedar."""
    raw_policies, static, by_cedar_id = reference(case)
    for number, request in enumerate(case.requests):
        check_request(case, bundle, raw_policies, static, by_cedar_id, request, number)


def reference(case: Case) -> tuple[cedarpy.PolicySet, StaticEntities, dict[str, str]]:
    """What raw Cedar decides ``case``'s requests on: its policies, its static entities,
    and the @id of each policy by Cedar's own id (errors name the latter)."""
    text = "\n".join(case.policies)
    parsed = cedarpy.policies_to_pst(text)
    by_cedar_id = {cid: dict(node.annotations)["id"]
                   for group in (parsed.static_policies, parsed.templates)
                   for cid, node in group.items()}
    return (cedarpy.PolicySet.from_str(text), static_entities(case.schema, case.entities),
            by_cedar_id)


def check_request(case: Case, bundle: Bundle, raw_policies: cedarpy.PolicySet,
                  static: StaticEntities, by_cedar_id: dict[str, str], request: Request, number: int) -> None:
    action = case.actions[request.action]
    principal_entity = None
    if request.user is not None:
        user_id, properties = request.user
        identity, principal = asserted_principal(AssertedSubject(
            type=case.names.user, id=user_id, asserted_by="pep", properties=properties))
        principal_entity = {"uid": {"type": case.names.user, "id": user_id}}
        if properties is not None:
            principal_entity.update(attrs=properties, parents=[])
    else:
        assert request.workload is not None
        identity, principal = verified(request.workload, request.as_token), None
    ours = decide(bundle, identity=identity, principal=principal, action=action.name,
                  resource=request.resource, context=request.context, live=request.live,
                  now=MONDAY_10, grants=request.grants)
    declares = frozenset(k for k, on in (("live", action.live),
                                         ("credential", action.credential)) if on)
    raw = raw_decision(case.schema, raw_policies, static, identity=identity,
                       action=(case.names.action_type, action.name), resource=request.resource,
                       context=request.context, live=request.live, now=MONDAY_10,
                       declares=declares, grants=request.grants, principal=principal_entity)
    where = f"request {number} ({request.action}): ours {ours.reason_codes} {ours.errors}"
    if raw.decision == cedarpy.Decision.NoDecision:
        assert all("failed to build request" in e for e in raw.diagnostics.errors), \
            raw.diagnostics.errors
        assert ours.reason_codes[0] == "request.invalid", f"{where}; raw {raw.diagnostics.errors}"
        event("refused by the schema: " + raw.diagnostics.errors[0][:120])
        return
    assert ours.reason_codes[0] != "request.invalid", f"{where}; raw {raw.decision}"
    raw_errors = {_policy_of(e, by_cedar_id) for e in raw.diagnostics.errors}
    ours_errors = {e.policy for e in ours.errors if e.code == "engine.error"}
    assert ours_errors == raw_errors, f"{where}; raw errors {raw.diagnostics.errors}"
    effects = {**case.effects, **{g.link_id: case.effects[g.template] for g in request.grants}}
    if any(effects.get(p) == "forbid" for p in raw_errors):
        # README "Fail closed on a forbid that errors": denied, naming the policy.
        assert ours.decision == "deny" and ours.reason_codes[0] == "engine.error", where
        event("errored forbid: denied")
        return
    assert ours.decision == ("allow" if raw.allowed else "deny"), f"{where}; raw {raw.decision}"
    assert sorted(r.policy for r in ours.reasons) == determining_ids(raw), where
    event(f"{ours.decision}{' (sliced)' if bundle.index else ''}"
          f"{' (entity slices)' if bundle.entity_slicer else ''}")


DEV = DevIssuer.from_private_key(ec.generate_private_key(ec.SECP256R1()))
VERIFIER = IdentityVerifier.from_settings(Settings(), dev_issuer=DEV)
_TOKENS: dict[tuple[str, frozenset[str], datetime], str] = {}


def verified(workload: VerifiedIdentity, as_token: bool) -> VerifiedIdentity:
    """``workload`` as given, or (``as_token``, a dev-issuer SPIFFE ID without groups)
    minted as a JWT-SVID and verified: the same token again is a verified-credential
    cache hit, which must give the same identity."""
    if not as_token or workload.trust_domain != DEV.trust_domain or workload.groups:
        return workload
    assert workload.issued_at is not None and workload.expires_at is not None
    key = (workload.principal_id, workload.scopes, workload.issued_at)
    if key not in _TOKENS:
        _TOKENS[key] = DEV.mint(workload.principal_id, scopes=sorted(workload.scopes),
                                now=workload.issued_at, ttl_s=int(
                                    (workload.expires_at - workload.issued_at).total_seconds()))
    identity = VERIFIER.verify(BearerToken(_TOKENS[key]), MONDAY_10)
    assert (identity.principal_id, identity.scopes, identity.issued_at, identity.groups) == (
        workload.principal_id, workload.scopes, workload.issued_at, frozenset())
    return identity


def _policy_of(message: str, by_cedar_id: dict[str, str]) -> str | None:
    match = _POLICY_IN_ERROR.search(message)
    if match is None:
        return None
    return by_cedar_id.get(match.group(1), match.group(1))


# PDP_FUZZ_NO_SHRINK=1 reports the first failure as found (shrinking a bundle is slow).
PHASES = [p for p in Phase if p is not Phase.shrink or not os.environ.get("PDP_FUZZ_NO_SHRINK")]


@pytest.mark.timeout(FUZZ_TIMEOUT)
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, print_blob=True, phases=PHASES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(case=cases())
def test_decide_equals_raw_cedar_on_generated_bundles(case: Case) -> None:
    check_case(case)
