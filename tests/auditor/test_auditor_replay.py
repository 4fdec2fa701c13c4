"""Replay: decide -> record -> replay under the same bundle gives the same decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context.model import LiveSnapshot, ValueSource
from pdp.audit.auditing.archive import BundleArchive
from pdp.audit.auditing.redact import Redactor
from pdp.authoring.replay import NotReplayable, replay_inputs, replay_record
from pdp.decision.decide import decide
from pdp.decision.model import AuthorizeInput, Decision, DecisionError, ResourceRef
from pdp.decision.record import decision_record
from pdp.engine.bundle import load_bundle
from pdp.identity.model import VerifiedIdentity
from tests.conftest import examples

MONDAY_10 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
KNOWN = ["spiffe://example.org/agents/reporter", "spiffe://example.org/services/etl",
         "spiffe://example.org/services/admin-console", "spiffe://example.org/oncall/responder",
         "spiffe://example.org/ops/sre-console", "spiffe://example.org/audit/auditor"]
GROUPS = ["analytics", "pipelines", "data-admins", "agents", "incident-responders", "auditors"]
SCOPES = ["billing:call", "inventory:call"]
ACTIONS = ["read", "write", "delete", "export", "call", 'App::Action::"read"', "obliterate",
           'Pdp::Action::"audit.read"', 'Pdp::Action::"policy.reload"']


@st.composite
def identities(draw, now: datetime) -> VerifiedIdentity:
    principal = draw(st.one_of(
        st.sampled_from(KNOWN),
        st.from_regex(r"spiffe://(example\.org|partner\.example)/[a-z]{1,6}", fullmatch=True),
        st.sampled_from(["client-1", "reporting-client"])))
    spiffe = principal.startswith("spiffe://")
    td, _, path = principal.removeprefix("spiffe://").partition("/") if spiffe else ("", "", "")
    kind = draw(st.sampled_from(["jwt-svid", "x509-svid", "jwt"]))
    age = draw(st.integers(0, 3600))
    micro = draw(st.integers(0, 999_999))
    issued = now - timedelta(seconds=age, microseconds=micro)
    has_iat = draw(st.booleans())
    actor = draw(st.sampled_from([None, "spiffe://example.org/agents/orchestrator"]))
    return VerifiedIdentity(
        principal_id=principal, kind=kind, issuer=f"spiffe://{td}" if spiffe else "https://idp",
        trust_domain=td, path=f"/{path}" if spiffe else "",
        scopes=frozenset(draw(st.sets(st.sampled_from(SCOPES), max_size=2))),
        groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=2))),
        issued_at=issued if has_iat else None,
        not_before=None if has_iat else issued,
        expires_at=issued + timedelta(seconds=draw(st.integers(60, 7200))),
        jti=draw(st.sampled_from([None, "j-1"])), actor=actor, chain_depth=1 if actor else 0)


resources = st.one_of(
    st.sampled_from([("App::Dataset", "sales-daily"), ("App::Dataset", "customer-pii"),
                     ("App::Dataset", "ledger"), ("App::Api", "billing"),
                     ("App::Api", "inventory"), ("Pdp::Admin", "audit")]).map(
        lambda t: ResourceRef(*t)),
    st.builds(lambda i, sensitive, domain: ResourceRef(
        type="App::Dataset", id=f"new-{i}", attrs={"sensitive": sensitive},
        parents=(("App::DataDomain", domain),) if domain else ()),
        st.integers(0, 3), st.one_of(st.booleans(), st.just("yes")),
        st.sampled_from(["analytics", "finance", None])))
contexts = st.fixed_dictionaries({}, optional={
    "purpose": st.one_of(st.text(max_size=4), st.integers(0, 3)),
    "method": st.sampled_from(["GET", "POST"])})


@st.composite
def requests(draw):
    now = MONDAY_10 + timedelta(minutes=draw(st.integers(-24 * 60, 24 * 60)),
                                microseconds=draw(st.integers(0, 999_999)))
    live = LiveSnapshot(now=now, incident=draw(st.booleans()), risk_level=draw(st.integers(0, 3)),
                        business_hours=draw(st.booleans()),
                        sources={"now": ValueSource("clock", now)})
    return (draw(identities(now)), draw(st.sampled_from(ACTIONS)), draw(resources),
            draw(contexts), live, now)


@pytest.fixture(scope="module")
def archived(tmp_path_factory, example_bundle):
    """The example bundle as an archive gives it back (re-parsed from the archived files)."""
    archive = BundleArchive(tmp_path_factory.mktemp("archive"))
    archive.store(example_bundle)
    return archive


def _record(decision: Decision, identity_request: AuthorizeInput, bundle, **kw) -> dict:
    record = decision_record(decision, identity_request, latency_us=7, bundle=bundle, **kw)
    return json.loads(json.dumps(record))  # exactly what a store gives back


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(requests())
def test_replay_under_the_recorded_bundle_reproduces_decision_and_policies(
        example_bundle, archived, req) -> None:
    identity, action, resource, context, live, now = req
    decision = decide(example_bundle, identity=identity, action=action, resource=resource,
                      context=context, live=live, now=now)
    record = _record(decision, AuthorizeInput(None, action, resource, context), example_bundle)
    report = replay_record(record, archive=archived, current=None)
    assert report.replayable and report.reproduced is True, report.as_dict()
    assert report.replayed["decision"] == decision.decision
    assert report.replayed["policies"] == sorted(r.policy for r in decision.reasons)
    # The credential context recomputed from the logged facts equals the one recorded.
    assert not [n for n in report.notes if "context.credential" in n]


def test_the_record_keeps_what_replay_needs(example_bundle) -> None:
    identity = VerifiedIdentity(
        principal_id="spiffe://example.org/services/etl", kind="jwt-svid",
        issuer="spiffe://example.org", trust_domain="example.org", path="/services/etl",
        groups=frozenset({"analytics"}), issued_at=MONDAY_10 - timedelta(seconds=40),
        expires_at=MONDAY_10 + timedelta(seconds=260))
    live = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
    resource = ResourceRef("App::Dataset", "sales-daily")
    decision = decide(example_bundle, identity=identity, action="read", resource=resource,
                      context={}, live=live, now=MONDAY_10)
    record = _record(decision, AuthorizeInput(None, "read", resource, {}, pep="gateway-1"),
                     example_bundle)
    assert record["pep"] == "gateway-1"
    assert record["action_uid"] == 'App::Action::"read"'
    assert record["principal_entity"]["attrs"]["path"] == "/services/etl"
    assert {"type": "Pdp::Group", "id": "pipelines"} in record["principal_entity"]["parents"]
    assert {"type": "Pdp::Group", "id": "analytics"} in record["principal_entity"]["parents"]
    assert record["credential_context"] == {
        "kind": "jwt-svid", "age_s": 40, "ttl_s": 260, "lifetime_s": 300, "delegated": False,
        "actor": "", "chain_depth": 0}
    assert record["redacted"] == []
    inputs = replay_inputs(record)
    assert inputs.identity == identity and inputs.now == MONDAY_10


def _etl_decision(bundle, *, context=None, resource=None, now=MONDAY_10):
    identity = VerifiedIdentity(
        principal_id="spiffe://example.org/services/etl", kind="jwt-svid",
        issuer="spiffe://example.org", trust_domain="example.org", path="/services/etl",
        issued_at=now - timedelta(seconds=10), expires_at=now + timedelta(seconds=290))
    live = LiveSnapshot(now=now, incident=False, risk_level=0, business_hours=True)
    resource = resource or ResourceRef("App::Dataset", "ledger")
    request = AuthorizeInput(None, "write", resource, context or {})
    decision = decide(bundle, identity=identity, action="write", resource=resource,
                      context=request.context, live=live, now=now)
    return decision, request


def test_would_change_names_the_new_decision_under_a_changed_bundle(
        tmp_path: Path, bundle_copy, example_bundle) -> None:
    decision, request = _etl_decision(example_bundle)
    assert decision.decision == "deny"
    record = _record(decision, request, example_bundle)
    directory = bundle_copy()
    (directory / "ledger.cedar").write_text(
        '@id("dataset.ledger.etl-write")\n@reason("The ETL pipeline may write the ledger.")\n'
        'permit (principal == Pdp::Workload::"spiffe://example.org/services/etl",\n'
        '        action == App::Action::"write", resource == App::Dataset::"ledger");\n')
    changed = load_bundle(directory)
    archive = BundleArchive(tmp_path / "archive")
    archive.store(example_bundle)
    report = replay_record(record, archive=archive, current=changed)
    assert report.reproduced is True and report.would_change is True
    assert report.current["decision"] == "allow"
    assert report.current["policies"] == ["dataset.ledger.etl-write"]
    assert any(c.startswith("decision:") for c in report.changes)


def test_a_version_missing_from_the_archive_is_not_reproduced_but_still_compared(
        tmp_path: Path, example_bundle, bundle_copy) -> None:
    decision, request = _etl_decision(example_bundle)
    record = _record(decision, request, example_bundle)
    other = bundle_copy()
    (other / "extra.cedar").write_text('@id("x")\n@reason("x")\nforbid (principal, action, '
                                       'resource) when { false };\n')
    report = replay_record(record, archive=BundleArchive(tmp_path / "empty"),
                           current=load_bundle(other))
    assert report.replayable and report.reproduced is None and report.would_change is False
    assert "not in the archive" in " ".join(report.notes)


def test_a_refused_credential_is_not_replayable(example_bundle) -> None:
    from pdp.decision.decide import Outcomes

    outcome = Outcomes(decision_id="d-1", now=MONDAY_10, identity=None, action="read",
                       resource='App::Dataset::"x"', live=None, bundle=example_bundle,
                       max_ttl=timedelta(minutes=5))
    decision = outcome.error(DecisionError("identity.expired", "the credential expired"))
    record = _record(decision, AuthorizeInput(None, "read", ResourceRef("App::Dataset", "x")),
                     example_bundle)
    with pytest.raises(NotReplayable, match="credentials are never logged"):
        replay_inputs(record)
    report = replay_record(record, archive=None, current=example_bundle)
    assert report.replayable is False and report.reproduced is None
    assert report.would_change is None


def test_an_admin_event_is_not_replayable() -> None:
    report = replay_record({"decision_id": "e", "kind": "admin", "event": "bundle.load"},
                           archive=None, current=None)
    assert report.replayable is False and "not a decision" in report.notes[0]


def test_a_redacted_record_says_it_may_not_reproduce(example_bundle) -> None:
    resource = ResourceRef("App::Dataset", "new-1", attrs={"sensitive": True},
                           parents=(("App::DataDomain", "analytics"),))
    decision, request = _etl_decision(example_bundle, resource=resource,
                                      context={"purpose": "audit"})
    assert decision.decision == "allow"
    record = _record(decision, request, example_bundle,
                     redactor=Redactor.from_pointers(["/resource/attrs/sensitive",
                                                      "/context/purpose"]))
    assert record["redacted"] == ["/resource/attrs/sensitive", "/context/purpose"]
    assert record["request"]["resource"]["attrs"] == {}
    assert "purpose" not in record["request"]["context"]
    report = replay_record(record, archive=None, current=example_bundle)
    assert report.redacted and "may not reproduce" in report.notes[0]
    # The erased `sensitive` attribute is required by the schema: the replay cannot match.
    assert report.reproduced is False and report.differences


def test_a_subject_asserted_by_a_trusted_pep_is_replayed_as_asserted(example_bundle) -> None:
    from pdp.decision.decide import asserted_principal
    from pdp.decision.model import AssertedSubject

    subject = AssertedSubject(type="Pdp::Workload", id="spiffe://example.org/services/etl",
                              asserted_by="spiffe://example.org/peps/envoy",
                              properties={"groups": ["analytics"]})
    identity, principal = asserted_principal(subject)
    live = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
    resource = ResourceRef("App::Dataset", "sales-daily")
    decision = decide(example_bundle, identity=identity, action="read", resource=resource,
                      context={}, live=live, now=MONDAY_10, principal=principal)
    record = _record(decision, AuthorizeInput(None, "read", resource, asserted=subject),
                     example_bundle)
    report = replay_record(record, archive=None, current=example_bundle)
    assert report.reproduced is True
    assert report.replayed["policies"] == ["dataset.analytics.read", "dataset.pipelines.read-write"]


def test_a_malformed_asserted_subject_is_not_replayable() -> None:
    # `asserted` set but the subject is not an object, and no credential: the record cannot
    # be rebuilt, and the auditor is told so rather than handed an AttributeError.
    record = {"decision_id": "d-2", "kind": "decision", "asserted": True,
              "asserted_subject": "spiffe://example.org/agents/reporter",
              "principal": "spiffe://example.org/agents/reporter", "credential": None,
              "timestamp": "2026-01-05T10:00:00Z", "live": {},
              "request": {"action": "read", "resource": {"type": "App::Dataset", "id": "x"}}}
    with pytest.raises(NotReplayable, match="asserted subject is malformed"):
        replay_inputs(record)
