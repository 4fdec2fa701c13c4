"""A body that is not declared as JSON is 415 naming the header, not a puzzling 422.

`curl -d '{...}'` without `-H 'content-type: application/json'` sends
`application/x-www-form-urlencoded`: FastAPI used to answer that the body was missing.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.api.jsonbody import is_json_media_type
from tests.conftest import asgi_client

pytestmark = pytest.mark.anyio

BODY = json.dumps({"subject": {"token": "x"}, "action": "read",
                   "resource": {"type": "App::Dataset", "id": "sales-daily"}}).encode()


@pytest.mark.parametrize("path", ["/v1/authorize", "/v1/authorize/batch", "/v1/revocations"])
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain",
                                          "application/xml", "multipart/form-data; boundary=x"])
async def test_a_body_declared_as_something_else_is_415_and_nothing_is_recorded(
        client, components, path: str, content_type: str) -> None:
    before = len(components.log.tail(1000))
    answer = await client.post(path, content=BODY, headers={"content-type": content_type})
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 415
    assert "application/json" in problem["detail"] and content_type in problem["detail"]
    assert len(components.log.tail(1000)) == before


async def test_a_body_without_any_content_type_is_415(client) -> None:
    answer = await client.post("/v1/authorize", content=BODY, headers={"content-type": ""})
    assert answer.status_code == 415
    assert "no content type" in answer.json()["detail"]


async def test_an_empty_body_without_a_content_type_is_still_a_missing_body_422(client) -> None:
    answer = await client.post("/v1/authorize")
    assert answer.status_code == 422


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=utf-8",
                                          "application/authorize+json"])
async def test_json_media_types_with_parameters_or_a_suffix_are_decided(
        client, content_type: str) -> None:
    answer = await client.post("/v1/authorize", content=BODY,
                               headers={"content-type": content_type})
    assert answer.status_code == 200
    assert answer.json()["decision"] == "deny"  # "x" is no credential


async def test_authzen_keeps_its_documented_400_for_a_wrong_content_type(client) -> None:
    answer = await client.post("/access/v1/evaluation", content=b"{}",
                               headers={"content-type": "text/plain"})
    assert answer.status_code == 400  # AuthZEN 1.0 answers bad requests with 400


async def test_the_openapi_document_declares_the_415(client) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"]["/v1/authorize"]["post"]
    assert "application/problem+json" in operation["responses"]["415"]["content"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.from_regex(r"[a-z]{1,12}/[a-z0-9.+-]{1,20}", fullmatch=True))
def test_media_type_classification(media_type: str) -> None:
    expected = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json"))
    assert is_json_media_type(media_type) is expected
    assert is_json_media_type(f" {media_type.upper()} ; charset=utf-8") is expected


async def test_no_media_type_ever_gives_a_server_error(components) -> None:
    async with asgi_client(components) as client:
        for content_type in ["", ";", "application/", "/json", "a/b/c", "\t", "application/json+",
                             "application/+json"]:
            answer = await client.post("/v1/authorize", content=BODY,
                                       headers={"content-type": content_type})
            assert answer.status_code in (200, 415), (content_type, answer.status_code)
