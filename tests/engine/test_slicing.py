"""Slicing is exact: on random requests over generated bundles of 100 to 10,000
policies, decide() reaches raw cedarpy's full-set decision with the same
determining policies (groups, resource hierarchies, is/in/==/unconstrained
scopes, template grants)."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cache
from pathlib import Path

import cedarpy
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench.generate import generate_bundle, sizes
from context.model import LiveSnapshot
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine import load_bundle
from pdp.engine.grants import Grant
from pdp.identity.model import VerifiedIdentity
from tests.cedar_reference import determining_ids, raw_decision
from tests.conftest import MONDAY_10, examples

SIZES = [100, 1000, 10000]


@cache
def generated(policies: int, root: str) -> tuple:
    directory = Path(root) / f"gen-{policies}"
    generate_bundle(directory, policies=policies)
    bundle = load_bundle(directory)
    assert bundle.index is not None  # these bundles are sliced
    raw_policies = cedarpy.PolicySet.from_str((directory / "policies.cedar").read_text())
    entities = json.loads((directory / "entities.json").read_text())
    return bundle, raw_policies, entities, (directory / "schema.cedarschema").read_text()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("slicing"))


requests = st.fixed_dictionaries({
    "size": st.sampled_from(SIZES),
    "workload": st.integers(0, 10**6),
    "groups": st.sets(st.integers(0, 400), max_size=2),
    "action": st.sampled_from(["read", "write", "delete"]),
    "resource": st.one_of(
        st.tuples(st.just("Gen::Dataset"), st.integers(0, 10**6), st.none()),
        st.tuples(st.just("Gen::Folder"), st.integers(0, 10**6), st.none()),
        st.tuples(st.just("new"), st.integers(0, 10**6), st.booleans())),
    "incident": st.booleans(), "risk": st.integers(0, 3), "hours": st.booleans(),
    "age": st.integers(0, 7200),
    "grants": st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6),
                                 st.booleans()), max_size=2),
})


@settings(max_examples=examples(120), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(r=requests)
def test_sliced_decisions_equal_raw_cedar_on_the_full_set(root, r) -> None:
    bundle, raw_policies, static, schema_text = generated(r["size"], root)
    n = sizes(r["size"])
    team_count = n["teams"]
    workload = f"spiffe://example.org/team{r['workload'] % team_count}/w{r['workload'] % n['workloads']}"
    groups = frozenset(f"team{g % team_count}" for g in r["groups"])
    issued = MONDAY_10 - timedelta(seconds=r["age"])
    identity = VerifiedIdentity(principal_id=workload, kind="jwt-svid", issuer="spiffe://example.org",
                                trust_domain="example.org", path=workload.removeprefix("spiffe://example.org"),
                                groups=groups, issued_at=issued,
                                expires_at=issued + timedelta(hours=3))
    kind, number, sensitive = r["resource"]
    if kind == "new":
        resource = ResourceRef("Gen::Dataset", f"new-{number}",
                               attrs={"sensitive": sensitive, "owner": f"team{number % team_count}"},
                               parents=(("Gen::Folder", f"f{number % n['folders']}"),))
    elif kind == "Gen::Folder":
        resource = ResourceRef(kind, f"f{number % n['folders']}")
    else:
        resource = ResourceRef(kind, f"ds{number % n['datasets']}")
    live = LiveSnapshot(now=MONDAY_10, incident=r["incident"], risk_level=r["risk"],
                        business_hours=r["hours"])
    grants = [Grant(id=f"g{i}", template="t.read",
                    principal=workload if mine else f"spiffe://example.org/team0/w{p % n['workloads']}",
                    resource_type=resource.type if mine else "Gen::Dataset",
                    resource_id=resource.id if mine else f"ds{p % n['datasets']}",
                    expires_at=MONDAY_10 + timedelta(minutes=5), task="t", created_by=None,
                    created_at=MONDAY_10)
              for i, (p, _, mine) in enumerate(r["grants"])]

    ours = decide(bundle, identity=identity, action=r["action"], resource=resource, context={},
                  live=live, now=MONDAY_10, grants=grants)
    # Decided (grants and explanations included) without the whole set, which a start
    # leaves to its first use (pdp.engine.lazy_set).
    assert not bundle.full_set.is_built
    raw = raw_decision(schema_text, raw_policies, static, identity=identity,
                       action=("Gen::Action", r["action"]), resource=resource, context={},
                       live=live, now=MONDAY_10, grants=grants)
    if raw.decision == cedarpy.Decision.NoDecision:
        # Only a request the schema refuses may end here, never a broken reference.
        assert all("failed to build request" in e for e in raw.diagnostics.errors), \
            raw.diagnostics.errors
        event("request refused by the schema")
        assert ours.decision == "deny" and "request.invalid" in ours.reason_codes
        return
    event(f"{r['size']} policies: {ours.decision}")
    raw_ids = determining_ids(raw)
    assert ours.decision == ("allow" if raw.allowed else "deny"), ours.explanation
    if ours.reason_codes[0] in ("policy.permit", "policy.forbid"):
        assert sorted(x.policy for x in ours.reasons) == raw_ids
    else:
        assert raw_ids == [] and not raw.diagnostics.errors
