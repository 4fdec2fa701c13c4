"""Ids as Cedar takes them: empty entity ids and action names, any @id, on every door.

Cedar accepts any string as an entity id (``App::Dataset::""``) and as an action
name; the PDP accepts the same, bounded and without control characters, and a
verified principal's id is still the credential's.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.server import run_cli

EMPTY = {"type": "App::Dataset", "id": "", "attrs": {"sensitive": False}}
ETL = "spiffe://example.org/services/etl"


@pytest.fixture
def bundle_copy(bundle_copy):
    """The example bundle, plus an action named "" and a policy for the dataset with id ""."""

    def make() -> Path:
        d = bundle_copy()
        schema = d / "schema.cedarschema"
        schema.write_text(schema.read_text().replace(
            'action "call"',
            'action "" appliesTo {\n    principal: Pdp::Workload,\n    resource: Dataset,\n'
            '    context: DataContext,\n  };\n\n  action "call"'))
        (d / "empty.cedar").write_text(
            '@id("empty.unnamed")\n@reason("Anyone may do the unnamed action on the unnamed dataset.")\n'
            'permit (principal, action == App::Action::"", resource == App::Dataset::"");\n')
        return d

    return make


@pytest.fixture
async def client(components):
    from pdp.server import create_app

    app = create_app(components, watch=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://pdp.test") as c:
            yield c


@pytest.mark.anyio
async def test_authorize_takes_an_empty_action_name_and_entity_id(client, mint) -> None:
    r = await client.post("/v1/authorize", json={
        "subject": {"token": mint()}, "action": "", "resource": EMPTY})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["decision"] == "allow" and d["reasons"][0]["policy"] == "empty.unnamed"
    assert d["resource"] == 'App::Dataset::""'


@pytest.mark.anyio
async def test_batch_takes_them_too(client, mint) -> None:
    r = await client.post("/v1/authorize/batch", json={
        "subject": {"token": mint()},
        "items": [{"action": "", "resource": EMPTY}, {"action": 'App::Action::""', "resource": EMPTY}]})
    assert r.status_code == 200, r.text
    assert [x["decision"] for x in r.json()["results"]] == ["allow", "allow"]


@pytest.mark.anyio
async def test_authzen_evaluation_and_evaluations_take_them(client, mint) -> None:
    subject = {"type": "Pdp::Workload", "id": ETL, "properties": {"token": mint()}}
    resource = {"type": "App::Dataset", "id": "", "properties": {"sensitive": False}}
    r = await client.post("/access/v1/evaluation", json={
        "subject": subject, "action": {"name": ""}, "resource": resource})
    assert r.status_code == 200 and r.json() == {"decision": True}, r.text
    r = await client.post("/access/v1/evaluations", json={
        "subject": subject, "resource": resource,
        "evaluations": [{"action": {"name": ""}}, {"action": {"name": "read"}}]})
    assert r.status_code == 200, r.text
    assert [e["decision"] for e in r.json()["evaluations"]] == [True, False]


@pytest.mark.anyio
async def test_a_verified_principal_keeps_the_credentials_id(client, mint) -> None:
    r = await client.post("/access/v1/evaluation", json={
        "subject": {"type": "Pdp::Workload", "id": "", "properties": {"token": mint()}},
        "action": {"name": ""}, "resource": {"type": "App::Dataset", "id": "",
                                             "properties": {"sensitive": False}}})
    assert r.status_code == 200 and r.json() == {"decision": False}


@pytest.mark.anyio
@pytest.mark.parametrize("bad", ["a\nb", "\x00", "tab\there", "\x85", "x" * 1025])
async def test_control_characters_and_overlong_ids_are_a_clear_4xx(client, mint, bad) -> None:
    r = await client.post("/v1/authorize", json={
        "subject": {"token": mint()}, "action": "read",
        "resource": {"type": "App::Dataset", "id": bad}})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    expected = "control characters" if len(bad) < 1025 else "at most 1024"
    assert expected in r.text
    r = await client.post("/access/v1/evaluation", json={
        "subject": {"type": "Pdp::Workload", "id": ETL, "properties": {"token": mint()}},
        "action": {"name": bad if len(bad) < 300 else "read"},
        "resource": {"type": "App::Dataset", "id": bad}})
    assert r.status_code == 400


def test_pdp_check_takes_them(bundle_copy, tmp_path: Path) -> None:
    d = bundle_copy()
    r = run_cli("check", "--principal", ETL, "--action", "", "--resource",
                'App::Dataset::""', "--policies", str(d), cwd=tmp_path)
    # The dataset "" is not in entities.json and --resource gives no attrs: Cedar decides
    # on the uid alone, and the permit names only the uid.
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"empty.unnamed"' in r.stdout
