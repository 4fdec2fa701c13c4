"""/openapi.json declares what the server answers: problem+json errors, path parameters,
the "exactly one of token/x509" rule (the schemathesis run checks the rest live)."""

from __future__ import annotations

import re

import jsonschema_rs  # schemathesis's validator (the `test` extra)
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def document(client) -> dict:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


async def test_every_operation_declares_its_problem_answers(document) -> None:
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        expected = {"400", "431"}
        if "requestBody" in operation:
            expected |= {"413", "422"}
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            expected |= {"404", "422"}
        assert expected <= set(responses), (method, path, sorted(responses))
        for status in expected:
            # RFC 6749 §5.2: the token endpoint answers its own errors as application/json.
            oauth = {"application/json"} if (path, status) == ("/v1/token", "400") else set()
            assert set(responses[status]["content"]) == {"application/problem+json"} | oauth, \
                (method, path, status)


@pytest.mark.parametrize("path, method", [
    ("/v1/authorize", "post"), ("/access/v1/evaluation", "post"),
    ("/v1/revocations", "post"), ("/v1/decisions", "get"), ("/v1/context/risk", "put"),
])
async def test_guarded_operations_declare_401_and_403(document, path, method) -> None:
    responses = document["paths"][path][method]["responses"]
    for status in ("401", "403"):
        assert "application/problem+json" in responses[status]["content"], (path, status)


async def test_every_path_template_parameter_is_declared(document) -> None:
    for path, method, operation in _operations(document):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), (method, path)


async def test_no_fastapi_validation_error_shape_is_left(document) -> None:
    assert "HTTPValidationError" not in str(
        [op["responses"] for _, _, op in _operations(document)])


@pytest.mark.parametrize("subject, valid", [
    ({"token": "t"}, True), ({"x509": "pem"}, True), ({"token": "t", "x509": None}, True),
    ({"token": "t", "x509": "pem"}, False), ({}, False), ({"token": None}, False),
])
async def test_the_subject_schema_says_exactly_one_of_token_or_x509(document, subject,
                                                                   valid) -> None:
    schema = {**document["components"]["schemas"]["Subject"],
              "$defs": document["components"]["schemas"]}
    assert jsonschema_rs.validator_for(schema).is_valid(subject) == valid


async def test_the_subject_rule_in_the_schema_matches_the_server(client, mint) -> None:
    for subject in ({"token": mint()}, {"token": mint(), "x509": "pem"}):
        r = await client.post("/v1/authorize", json={
            "subject": subject, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}})
        assert (r.status_code == 200) == (len([v for v in subject.values() if v]) == 1)
