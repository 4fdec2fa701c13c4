"""AuthZEN Authorization API 1.0 conformance, driven through the real app (ASGI transport).

Each test names the rule it checks: the spec's HTTPS binding (200 with exactly
``{"decision": ...}``, 400 for a malformed payload, X-Request-ID echoed), the
three evaluations semantics, defaults and per-item errors, the metadata
document, and this PDP's mapping (verified vs asserted subjects, types,
actions, properties). The certification fixture (``cert_bundle/``) answers the
scenario's eight required decisions.
"""

from __future__ import annotations

import json

import pytest

from tests.authzen.conftest import ETL, TRUSTED_PEP, UNTRUSTED_PEP

pytestmark = pytest.mark.anyio

EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"


def workload(token: str, spiffe_id: str = ETL) -> dict:
    return {"type": "Pdp::Workload", "id": spiffe_id, "properties": {"token": token}}


def dataset(name: str, **properties) -> dict:
    return {"type": "App::Dataset", "id": name, **({"properties": properties} if properties else {})}


def user(name: str, **properties) -> dict:
    return {"type": "user", "id": name, **({"properties": properties} if properties else {})}


def record(name: str, **properties) -> dict:
    return {"type": "record", "id": name, **({"properties": properties} if properties else {})}


# --- access evaluation: the HTTPS binding -------------------------------------------


async def test_permit_is_exactly_decision_true_with_status_200(client, mint) -> None:
    r = await client.post(EVALUATION, json={"subject": workload(mint()), "action": {"name": "read"},
                                            "resource": dataset("sales-daily")})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"decision": True}


async def test_deny_is_exactly_decision_false_with_status_200(client, mint) -> None:
    r = await client.post(EVALUATION, json={"subject": workload(mint()), "action": {"name": "write"},
                                            "resource": dataset("ledger")})
    assert r.status_code == 200 and r.json() == {"decision": False}


async def test_reasons_are_added_only_when_the_request_asks(client, mint) -> None:
    body = {"subject": workload(mint()), "action": {"name": "write"},
            "resource": dataset("ledger"), "options": {"include_reasons": True}}
    answer = (await client.post(EVALUATION, json=body)).json()
    assert answer["decision"] is False
    context = answer["context"]
    assert context["reason_codes"] == ["policy.no_permit"]
    assert context["decision_id"] and context["id"] == context["decision_id"]
    assert context["reason_admin"]["en"].startswith("Denied: no policy permits")
    allow = (await client.post(EVALUATION, json={**body, "action": {"name": "read"},
                                                 "resource": dataset("sales-daily")})).json()
    assert allow["context"]["reasons"][0]["policy"] == "dataset.pipelines.read-write"


async def test_every_evaluation_is_in_the_decision_log(client, components, mint) -> None:
    body = {"subject": workload(mint()), "action": {"name": "read"},
            "resource": dataset("sales-daily"), "options": {"include_reasons": True}}
    answer = (await client.post(EVALUATION, json=body, headers={"x-request-id": "rid-1"})).json()
    logged = components.log.get(answer["context"]["decision_id"])
    assert logged["decision"] == "allow" and logged["request_id"] == "rid-1"
    assert logged["asserted"] is False
    assert mint() not in json.dumps(logged)


async def test_x_request_id_is_echoed_on_success_and_on_error(client, mint) -> None:
    ok = await client.post(EVALUATION, headers={"x-request-id": "bfe9eb29"}, json={
        "subject": workload(mint()), "action": {"name": "read"}, "resource": dataset("sales-daily")})
    assert ok.headers["x-request-id"] == "bfe9eb29"
    bad = await client.post(EVALUATION, headers={"x-request-id": "bad-1"}, json={})
    assert bad.status_code == 400 and bad.headers["x-request-id"] == "bad-1"
    batch = await client.post(EVALUATIONS, headers={"x-request-id": "b-1"}, json={
        "subject": workload(mint()), "action": {"name": "read"},
        "evaluations": [{"resource": dataset("sales-daily")}]})
    assert batch.headers["x-request-id"] == "b-1"


async def test_a_request_without_x_request_id_does_not_fail(client, mint) -> None:
    r = await client.post(EVALUATION, json={"subject": workload(mint()), "action": {"name": "read"},
                                            "resource": dataset("sales-daily")})
    assert r.status_code == 200 and "x-request-id" not in r.headers


async def test_unknown_members_are_ignored(client, mint) -> None:
    r = await client.post(EVALUATION, json={
        "subject": workload(mint()), "action": {"name": "read"}, "resource": dataset("sales-daily"),
        "foo": "bar", "futureField": {"nested": True}})
    assert r.status_code == 200 and r.json() == {"decision": True}


async def test_the_same_request_gets_the_same_decision(client, mint) -> None:
    body = {"subject": workload(mint()), "action": {"name": "read"}, "resource": dataset("ledger")}
    answers = [(await client.post(EVALUATION, json=body)).json() for _ in range(3)]
    assert answers == [{"decision": False}] * 3


@pytest.mark.parametrize("drop", ["subject", "action", "resource"])
async def test_a_missing_field_is_400(client, mint, drop) -> None:
    body = {"subject": workload(mint()), "action": {"name": "read"}, "resource": dataset("x")}
    del body[drop]
    r = await client.post(EVALUATION, json=body)
    assert r.status_code == 400
    assert drop in r.json()["detail"]


@pytest.mark.parametrize("where,patch", [
    ("subject.type", {"subject": {"id": ETL}}),
    ("subject.id", {"subject": {"type": "Pdp::Workload"}}),
    ("action.name", {"action": {}}),
    ("resource.type", {"resource": {"id": "x"}}),
    ("resource.id", {"resource": {"type": "App::Dataset"}}),
])
async def test_a_missing_sub_field_is_400(client, where, patch) -> None:
    body = {"subject": {"type": "Pdp::Workload", "id": ETL}, "action": {"name": "read"},
            "resource": dataset("x"), **patch}
    r = await client.post(EVALUATION, json=body)
    assert r.status_code == 400
    assert where in [e["field"] for e in r.json()["errors"]]


@pytest.mark.parametrize("patch", [
    {"subject": "alice"},
    {"action": {"name": 123}},
    {"resource": {"type": "App::Dataset", "id": 7}},
    {"context": ["not", "an", "object"]},
    {"subject": {"type": "Pdp::Workload", "id": ETL, "properties": "token"}},
])
async def test_a_mistyped_field_is_400(client, patch) -> None:
    body = {"subject": {"type": "Pdp::Workload", "id": ETL}, "action": {"name": "read"},
            "resource": dataset("x"), **patch}
    assert (await client.post(EVALUATION, json=body)).status_code == 400


@pytest.mark.parametrize("path", [EVALUATION, EVALUATIONS])
async def test_malformed_json_is_400(client, path) -> None:
    r = await client.post(path, content=b'{"subject": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


@pytest.mark.parametrize("path", [EVALUATION, EVALUATIONS])
async def test_a_content_type_other_than_json_is_400(client, mint, path) -> None:
    body = json.dumps({"subject": workload(mint()), "action": {"name": "read"},
                       "resource": dataset("sales-daily")})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        r = await client.post(path, content=body.encode(), headers=headers)
        assert r.status_code == 400, content_type
    ok = await client.post(path, content=body.encode(),
                           headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


@pytest.mark.parametrize("path", [EVALUATION, EVALUATIONS])
async def test_an_empty_body_is_400(client, path) -> None:
    r = await client.post(path, content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "empty" in r.json()["detail"]


async def test_a_body_that_is_not_an_object_is_400(client) -> None:
    r = await client.post(EVALUATION, json=[{"subject": {}}])
    assert r.status_code == 400


async def test_reserved_context_attributes_are_400(client, mint) -> None:
    r = await client.post(EVALUATION, json={
        "subject": workload(mint()), "action": {"name": "read"}, "resource": dataset("sales-daily"),
        "context": {"live": {"incident": False}}})
    assert r.status_code == 400 and "context.live" in r.json()["detail"]


# --- mapping: verified subjects ------------------------------------------------------


async def test_the_subject_is_verified_from_its_token(client, mint) -> None:
    expired = mint(ttl_s=1, now=__import__("datetime").datetime(2020, 1, 1,
                                                                 tzinfo=__import__("datetime").UTC))
    r = await client.post(EVALUATION, json={
        "subject": workload(expired), "action": {"name": "read"}, "resource": dataset("sales-daily"),
        "options": {"include_reasons": True}})
    assert r.json()["decision"] is False
    assert r.json()["context"]["reason_codes"] == ["identity.expired"]


async def test_a_subject_id_other_than_the_credentials_principal_is_denied(client, mint) -> None:
    r = await client.post(EVALUATION, json={
        "subject": workload(mint(), spiffe_id="spiffe://example.org/services/admin-console"),
        "action": {"name": "read"}, "resource": dataset("sales-daily"),
        "options": {"include_reasons": True}})
    answer = r.json()
    assert answer["decision"] is False
    assert answer["context"]["reason_codes"] == ["request.invalid"]
    assert "is not the principal of the presented credential" in answer["context"]["reason_admin"]["en"]


async def test_a_subject_with_a_token_must_be_a_pdp_workload(client, components, mint) -> None:
    """Well-formed but unusable: a refusal, answered false and recorded (not a 400)."""
    r = await client.post(EVALUATION, json={
        "subject": {"type": "user", "id": ETL, "properties": {"token": mint()}},
        "action": {"name": "read"}, "resource": dataset("sales-daily"),
        "options": {"include_reasons": True}})
    assert r.status_code == 200 and r.json()["decision"] is False
    context = r.json()["context"]
    assert context["reason_codes"] == ["request.invalid"]
    assert "Pdp::Workload" in context["error"]["message"]
    assert components.log.get(context["decision_id"])["decision"] == "deny"


async def test_verified_subject_properties_cannot_add_attributes(client, mint) -> None:
    """The credential is the only source of a verified workload's attributes and groups."""
    subject = workload(mint("spiffe://example.org/agents/unknown"))
    subject["properties"]["groups"] = ["pipelines"]
    r = await client.post(EVALUATION, json={"subject": subject, "action": {"name": "read"},
                                            "resource": dataset("sales-daily")})
    assert r.json() == {"decision": False}


async def test_action_name_may_be_the_cedar_uid_and_an_unknown_action_is_false(client, mint) -> None:
    token = mint()
    uid = await client.post(EVALUATION, json={"subject": workload(token),
                                              "action": {"name": 'App::Action::"read"'},
                                              "resource": dataset("sales-daily")})
    assert uid.json() == {"decision": True}
    unknown = await client.post(EVALUATION, json={
        "subject": workload(token), "action": {"name": "fly"}, "resource": dataset("sales-daily"),
        "options": {"include_reasons": True}})
    assert unknown.json()["decision"] is False
    assert unknown.json()["context"]["reason_codes"] == ["request.unknown_action"]


# --- mapping: asserted subjects ------------------------------------------------------


async def test_an_asserted_subject_from_a_pep_that_is_no_trusted_assertor_is_denied(
        client, components) -> None:
    body = {"subject": {"type": "Pdp::Workload", "id": ETL}, "action": {"name": "read"},
            "resource": dataset("sales-daily"), "options": {"include_reasons": True}}
    anonymous = (await client.post(EVALUATION, json=body)).json()
    assert anonymous["decision"] is False
    assert anonymous["context"]["reason_codes"] == ["identity.missing"]
    other = components.dev_issuer.mint(UNTRUSTED_PEP)
    untrusted = (await client.post(EVALUATION, json=body,
                                   headers={"authorization": f"Bearer {other}"})).json()
    assert untrusted["decision"] is False
    assert untrusted["context"]["reason_codes"] == ["identity.missing"]
    assert components.log.get(untrusted["context"]["decision_id"])["asserted"] is False


async def test_a_trusted_assertor_may_assert_a_workload_and_the_log_marks_it(
        client, components) -> None:
    pep = components.dev_issuer.mint(TRUSTED_PEP)
    r = await client.post(EVALUATION, headers={"authorization": f"Bearer {pep}"}, json={
        "subject": {"type": "Pdp::Workload", "id": ETL}, "action": {"name": "read"},
        "resource": dataset("sales-daily"), "options": {"include_reasons": True}})
    answer = r.json()
    assert answer["decision"] is True and answer["context"]["asserted"] is True
    logged = components.log.get(answer["context"]["decision_id"])
    assert logged["asserted"] is True
    assert logged["asserted_subject"]["asserted_by"] == TRUSTED_PEP
    assert logged["pep"] == TRUSTED_PEP
    assert logged["credential"]["kind"] == "asserted"


async def test_an_asserted_subject_keeps_its_own_cedar_type_and_properties(cert_client,
                                                                          cert_components) -> None:
    """subject.type -> Cedar entity type; subject.properties -> its attributes (rule 6)."""
    r = await cert_client.post(EVALUATION, json={
        "subject": user("bob", role="admin"), "action": {"name": "write"},
        "resource": record("record-2", status="archived"), "options": {"include_reasons": True}})
    answer = r.json()
    assert answer["decision"] is True
    assert answer["context"]["reasons"][0]["policy"] == "record.write.admin"
    logged = cert_components.log.get(answer["context"]["decision_id"])
    assert logged["principal"] == "bob" and logged["asserted"] is True
    assert logged["asserted_subject"] == {"type": "user", "id": "bob", "asserted_by": TRUSTED_PEP,
                                          "properties": {"role": "admin"}}


async def test_asserted_properties_are_checked_against_the_schema(cert_client) -> None:
    r = await cert_client.post(EVALUATION, json={
        "subject": user("bob", role=7), "action": {"name": "write"}, "resource": record("record-1"),
        "options": {"include_reasons": True}})
    assert r.json()["decision"] is False
    assert r.json()["context"]["reason_codes"] == ["request.invalid"]


# --- the certification fixture's eight decisions -------------------------------------


@pytest.mark.parametrize("rule,body,expected", [
    (1, {"subject": user("alice"), "action": {"name": "read"}, "resource": record("record-1")}, True),
    (2, {"subject": user("alice"), "action": {"name": "write"}, "resource": record("record-1")}, True),
    (3, {"subject": user("bob"), "action": {"name": "read"}, "resource": record("record-1")}, True),
    (4, {"subject": user("bob"), "action": {"name": "write"}, "resource": record("record-1")}, False),
    (5, {"subject": user("alice"), "action": {"name": "write"},
         "resource": record("record-2", status="archived")}, False),
    (6, {"subject": user("bob", role="admin"), "action": {"name": "write"},
         "resource": record("record-2", status="archived")}, True),
    (7, {"subject": user("alice"), "action": {"name": "delete", "properties": {"soft": True}},
         "resource": record("record-1")}, True),
    (8, {"subject": user("alice"), "action": {"name": "delete", "properties": {"soft": False}},
         "resource": record("record-1")}, False),
])
async def test_certification_fixture_rule(cert_client, rule, body, expected) -> None:
    r = await cert_client.post(EVALUATION, json=body)
    assert r.status_code == 200 and r.json() == {"decision": expected}, rule


async def test_certification_optional_context_and_additional_properties(cert_client) -> None:
    with_context = await cert_client.post(EVALUATION, json={
        "subject": user("alice"), "action": {"name": "read"}, "resource": record("record-1"),
        "context": {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}})
    assert with_context.json() == {"decision": True}
    additional = await cert_client.post(EVALUATION, json={
        "subject": user("alice", department="Sales", role="manager"),
        "action": {"name": "read", "properties": {"method": "GET"}},
        "resource": record("record-1", status="active", owner="bob")})
    assert additional.json() == {"decision": True}


async def test_action_properties_may_not_repeat_a_context_key(cert_client) -> None:
    r = await cert_client.post(EVALUATION, json={
        "subject": user("alice"), "action": {"name": "delete", "properties": {"soft": True}},
        "resource": record("record-1"), "context": {"soft": False}})
    assert r.status_code == 200 and r.json() == {"decision": False}  # a recorded refusal


# --- access evaluations ---------------------------------------------------------------


async def test_evaluations_answer_in_request_order_with_exact_plain_items(client, mint) -> None:
    r = await client.post(EVALUATIONS, json={
        "subject": workload(mint()), "action": {"name": "read"},
        "evaluations": [{"resource": dataset("sales-daily")}, {"resource": dataset("ledger")},
                        {"action": {"name": "write"}, "resource": dataset("customer-pii")}]})
    assert r.status_code == 200
    assert r.json() == {"evaluations": [{"decision": True}, {"decision": False},
                                        {"decision": True}]}


async def test_execute_all_is_the_default_and_evaluates_every_item(client, mint) -> None:
    body = {"subject": workload(mint()), "action": {"name": "read"},
            "evaluations": [{"resource": dataset("ledger")}, {"resource": dataset("sales-daily")},
                            {"resource": dataset("ledger")}]}
    default = (await client.post(EVALUATIONS, json=body)).json()
    explicit = (await client.post(EVALUATIONS, json={
        **body, "options": {"evaluations_semantic": "execute_all"}})).json()
    assert default == explicit == {"evaluations": [{"decision": False}, {"decision": True},
                                                   {"decision": False}]}


async def test_deny_on_first_deny_stops_after_the_first_false(client, components, mint,
                                                               monkeypatch) -> None:
    asked = _count_decisions(components, monkeypatch)
    r = await client.post(EVALUATIONS, json={
        "subject": workload(mint()), "action": {"name": "read"},
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [{"resource": dataset("sales-daily")}, {"resource": dataset("ledger")},
                        {"resource": dataset("customer-pii")}]})
    assert r.json() == {"evaluations": [{"decision": True}, {"decision": False}]}
    assert asked == ["sales-daily", "ledger"]


async def test_permit_on_first_permit_stops_after_the_first_true(client, components, mint,
                                                                 monkeypatch) -> None:
    asked = _count_decisions(components, monkeypatch)
    r = await client.post(EVALUATIONS, json={
        "subject": workload(mint()), "action": {"name": "read"},
        "options": {"evaluations_semantic": "permit_on_first_permit"},
        "evaluations": [{"resource": dataset("ledger")}, {"resource": dataset("sales-daily")},
                        {"resource": dataset("customer-pii")}]})
    assert r.json() == {"evaluations": [{"decision": False}, {"decision": True}]}
    assert asked == ["ledger", "sales-daily"]


async def test_short_circuits_run_to_the_end_when_nothing_triggers_them(client, mint) -> None:
    token = mint()
    all_true = await client.post(EVALUATIONS, json={
        "subject": workload(token), "action": {"name": "read"},
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [{"resource": dataset("sales-daily")}, {"resource": dataset("customer-pii")}]})
    assert all_true.json() == {"evaluations": [{"decision": True}, {"decision": True}]}
    all_false = await client.post(EVALUATIONS, json={
        "subject": workload(token), "action": {"name": "read"},
        "options": {"evaluations_semantic": "permit_on_first_permit"},
        "evaluations": [{"resource": dataset("ledger")}, {"resource": dataset("ledger")}]})
    assert all_false.json() == {"evaluations": [{"decision": False}, {"decision": False}]}


async def test_an_item_missing_a_field_is_false_for_that_item_only(client, mint) -> None:
    r = await client.post(EVALUATIONS, json={
        "subject": workload(mint()), "action": {"name": "read"},
        "evaluations": [{"resource": dataset("sales-daily")}, {},
                        {"resource": {"type": "App::Dataset"}}, "not an object",
                        {"resource": {"type": "App::Dataset", "id": 5}},
                        {"resource": dataset("sales-daily")}]})
    assert r.status_code == 200
    assert [e["decision"] for e in r.json()["evaluations"]] == [True, False, False, False, False, True]


async def test_an_invalid_item_counts_as_a_deny_for_deny_on_first_deny(client, mint) -> None:
    r = await client.post(EVALUATIONS, json={
        "subject": workload(mint()), "action": {"name": "read"},
        "options": {"evaluations_semantic": "deny_on_first_deny", "include_reasons": True},
        "evaluations": [{}, {"resource": dataset("sales-daily")}]})
    answer = r.json()["evaluations"]
    assert len(answer) == 1 and answer[0]["decision"] is False
    assert answer[0]["context"]["error"]["status"] == 400
    assert "resource" in answer[0]["context"]["error"]["message"]


async def test_item_entities_replace_defaults_but_inherit_a_missing_type_or_id(cert_client) -> None:
    r = await cert_client.post(EVALUATIONS, json={
        "subject": user("alice"), "action": {"name": "write"}, "resource": {"type": "record"},
        "evaluations": [{"resource": {"id": "record-1", "properties": {"status": "active"}}},
                        {"resource": record("record-2", status="archived")}]})
    assert r.json() == {"evaluations": [{"decision": True}, {"decision": False}]}


async def test_item_context_replaces_the_default_context(cert_client) -> None:
    r = await cert_client.post(EVALUATIONS, json={
        "subject": user("alice"), "action": {"name": "delete"}, "context": {"soft": True},
        "evaluations": [{"resource": record("record-1")},
                        {"resource": record("record-1"), "context": {"source": "override"}}]})
    assert r.json() == {"evaluations": [{"decision": True}, {"decision": False}]}


async def test_certification_batches(cert_client) -> None:
    ordered = await cert_client.post(EVALUATIONS, json={
        "subject": user("bob"), "resource": record("record-1"),
        "evaluations": [{"action": {"name": "read"}}, {"action": {"name": "write"}}]})
    assert ordered.json() == {"evaluations": [{"decision": True}, {"decision": False}]}
    subjects = await cert_client.post(EVALUATIONS, json={
        "action": {"name": "write"}, "resource": record("record-2", status="archived"),
        "evaluations": [{"subject": user("alice")}, {"subject": user("bob", role="admin")}]})
    assert subjects.json() == {"evaluations": [{"decision": False}, {"decision": True}]}
    no_defaults = await cert_client.post(EVALUATIONS, json={"evaluations": [
        {"subject": user("alice"), "action": {"name": "read"}, "resource": record("record-1")},
        {"subject": user("bob"), "action": {"name": "write"}, "resource": record("record-1")}]})
    assert no_defaults.json() == {"evaluations": [{"decision": True}, {"decision": False}]}


@pytest.mark.parametrize("evaluations", [None, []])
async def test_without_evaluations_the_batch_endpoint_answers_like_a_single_one(
        cert_client, evaluations) -> None:
    body = {"subject": user("alice"), "action": {"name": "read"}, "resource": record("record-1")}
    if evaluations is not None:
        body["evaluations"] = evaluations
    r = await cert_client.post(EVALUATIONS, json=body)
    assert r.status_code == 200 and r.json() == {"decision": True}


async def test_without_evaluations_a_missing_field_is_still_400(cert_client) -> None:
    r = await cert_client.post(EVALUATIONS, json={"subject": user("alice"),
                                                  "action": {"name": "read"}})
    assert r.status_code == 400


@pytest.mark.parametrize("patch", [
    {"options": {"evaluations_semantic": "first_one_wins"}},
    {"options": "execute_all"},
    {"evaluations": {"resource": {"type": "record", "id": "r"}}},
    {"subject": "alice"},
    {"action": {"name": 1}},
    {"context": {"live": {}}},
    {"evaluations": [{"resource": {"type": "record", "id": str(i)}} for i in range(101)]},
])
async def test_a_malformed_evaluations_payload_is_400(cert_client, patch) -> None:
    body = {"subject": user("alice"), "action": {"name": "read"},
            "evaluations": [{"resource": record("record-1")}], **patch}
    assert (await cert_client.post(EVALUATIONS, json=body)).status_code == 400


async def test_batch_reasons_are_opt_in_per_request(client, mint) -> None:
    body = {"subject": workload(mint()), "action": {"name": "read"},
            "evaluations": [{"resource": dataset("ledger")}]}
    plain = (await client.post(EVALUATIONS, json=body)).json()
    assert plain == {"evaluations": [{"decision": False}]}
    explained = (await client.post(EVALUATIONS, json={**body, "options": {"include_reasons": True}}
                                   )).json()
    assert explained["evaluations"][0]["context"]["reason_codes"] == ["policy.no_permit"]


# --- metadata ---------------------------------------------------------------------


async def test_well_known_configuration_names_this_pdp_and_its_endpoints(client) -> None:
    r = await client.get("/.well-known/authzen-configuration")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "policy_decision_point": "http://pdp.test",
        "access_evaluation_endpoint": "http://pdp.test/access/v1/evaluation",
        "access_evaluations_endpoint": "http://pdp.test/access/v1/evaluations",
    }


async def test_the_authzen_endpoints_are_in_the_openapi_document(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    body = spec["paths"][EVALUATION]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["required"]) == {"subject", "action", "resource"}
    assert EVALUATIONS in spec["paths"] and "/.well-known/authzen-configuration" in spec["paths"]


def _count_decisions(components, monkeypatch) -> list[str]:
    """Spy on the service: the resource ids it was asked to decide, in order."""
    asked: list[str] = []
    authorize, batch = components.service.authorize, components.service.authorize_batch

    async def one(request):
        asked.append(request.resource.id)
        return await authorize(request)

    async def many(requests):
        asked.extend(r.resource.id for r in requests)
        return await batch(requests)

    monkeypatch.setattr(components.service, "authorize", one)
    monkeypatch.setattr(components.service, "authorize_batch", many)
    return asked
