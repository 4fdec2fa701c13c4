"""A principal's page shows its task grants to those the bundle lets read them
(``policy.grants.read``, as ``GET /v1/grants``), and says so to the others."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings
from pdp.engine.grants import Grant
from tests.conftest import POLICIES, asgi_client
from tests.console.conftest import AUDITOR, ETL

pytestmark = pytest.mark.anyio

READER = "spiffe://example.org/agents/reporter"


@pytest.fixture
def components(tmp_path: Path, bundle_copy) -> Iterator[Components]:
    """The example bundle with the auditor also in ``policy-admins`` (may read grants)."""
    bundle = bundle_copy()
    entities_path = bundle / "entities.json"
    entities = json.loads(entities_path.read_text())
    for entity in entities:
        if entity["uid"] == {"type": "Pdp::Workload", "id": AUDITOR}:
            entity["parents"].append({"type": "Pdp::Group", "id": "policy-admins"})
    entities_path.write_text(json.dumps(entities))
    parts = build_components(load_settings(None, dev=True, policies=bundle,
                                           state_dir=tmp_path / "state"))
    yield parts
    parts.close()


def _grant(components: Components, gid: str, principal: str, task: str,
           ttl: timedelta) -> Grant:
    now = components.clock.now()
    return components.grants.add(Grant(
        id=gid, template="grant.dataset.read", principal=principal,
        resource_type="App::Dataset", resource_id="ledger", expires_at=now + ttl, task=task,
        created_by=AUDITOR, created_at=now - timedelta(seconds=1)))


async def test_the_principals_page_lists_its_grants_only(client, sign_in, components):
    _grant(components, "g-live", ETL, "quarter-close", timedelta(hours=1))
    _grant(components, "g-revoked", ETL, "<b>old task</b>", timedelta(hours=1))
    components.grants.revoke("g-revoked", components.clock.now())
    _grant(components, "g-other", READER, "someone-else", timedelta(hours=1))
    await sign_in(AUDITOR)
    page = await client.get(f"/console/identities/{ETL}")
    assert page.status_code == 200
    assert "g-live" in page.text and "quarter-close" in page.text and "active" in page.text
    assert "g-revoked" in page.text and "revoked" in page.text
    assert "&lt;b&gt;old task&lt;/b&gt;" in page.text  # a task text is shown, not run
    assert "g-other" not in page.text and "someone-else" not in page.text
    none = await client.get(f"/console/identities/{READER}x")
    assert none.status_code == 200 and "No task grants for this principal" in none.text


async def test_without_policy_grants_read_the_page_says_so(tmp_path: Path) -> None:
    """The plain example bundle: the auditor reads the log but not grants."""
    parts = build_components(load_settings(None, dev=True, policies=bundle_copy_plain(tmp_path),
                                           state_dir=tmp_path / "state2"))
    try:
        _grant(parts, "g-hidden", ETL, "secret-task", timedelta(hours=1))
        async with asgi_client(parts) as plain:
            signed = await plain.post("/console/signin/dev", headers={"origin": "http://pdp"},
                                      data={"principal": AUDITOR, "next": "/console/decisions"})
            assert signed.status_code == 303
            page = await plain.get(f"/console/identities/{ETL}")
        assert page.status_code == 200
        assert "may not read task grants" in page.text
        assert "g-hidden" not in page.text and "secret-task" not in page.text
    finally:
        parts.close()


def bundle_copy_plain(tmp_path: Path) -> Path:
    """An unmodified copy of the example bundle."""
    target = tmp_path / "plain-policies"
    shutil.copytree(POLICIES, target)
    return target
