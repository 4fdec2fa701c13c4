"""Per-request entity sets (large entities.json) give every request what raw Cedar sees.

A bundle with ENTITY_SLICE_MIN static entities hands each request only the
entities it can reach, cached by what determines them; a request warmed by
another must not change the next one's answer.
"""

from __future__ import annotations

import json

import pytest

from context.model import LiveSnapshot
from pdp.decision.decide import asserted_principal, decide
from pdp.decision.model import AssertedSubject, ResourceRef
from pdp.engine import load_bundle
from pdp.engine.entity_slice import ENTITY_SLICE_MIN
from tests.conftest import MONDAY_10

LIVE = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)

SCHEMA = """
entity Filler;
entity Folder;
entity User in [Folder];
entity Doc in [Folder] { public: Bool };
action view appliesTo { principal: [User], resource: [Doc], context: { about?: Doc } };
"""
POLICIES = """
@id("users-view") @reason("Users may view documents.")
permit (principal is User, action == Action::"view", resource);
@id("banned") @reason("Banned users may not view anything.")
forbid (principal in Folder::"banned", action == Action::"view", resource);
@id("classified-context") @reason("Nothing may be viewed about a classified document.")
forbid (principal, action == Action::"view", resource)
  when { context has about && context.about in Folder::"classified" };
"""


@pytest.fixture(scope="module")
def sliced_bundle(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sliced")
    entities = [{"uid": {"type": "Filler", "id": str(i)}, "attrs": {}, "parents": []}
                for i in range(ENTITY_SLICE_MIN)]
    entities += [
        {"uid": {"type": "Folder", "id": "banned"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Folder", "id": "classified"}, "attrs": {}, "parents": []},
        {"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": []},
        {"uid": {"type": "User", "id": "mallory"}, "attrs": {},
         "parents": [{"type": "Folder", "id": "banned"}]},
        {"uid": {"type": "Doc", "id": "menu"}, "attrs": {"public": True}, "parents": []},
        {"uid": {"type": "Doc", "id": "plans"}, "attrs": {"public": False},
         "parents": [{"type": "Folder", "id": "classified"}]},
    ]
    (directory / "schema.cedarschema").write_text(SCHEMA)
    (directory / "policies.cedar").write_text(POLICIES)
    (directory / "entities.json").write_text(json.dumps(entities))
    bundle = load_bundle(directory)
    assert bundle.entity_slicer is not None  # the path under test
    return bundle


def _view(bundle, user: str, context=None):
    identity, principal = asserted_principal(
        AssertedSubject(type="User", id=user, asserted_by="pep"))
    return decide(bundle, identity=identity, principal=principal, action="view",
                  resource=ResourceRef("Doc", "menu"), context=context or {}, live=LIVE,
                  now=MONDAY_10)


def test_an_asserted_principal_gets_its_own_ancestors_after_another_warmed_the_slice(
        sliced_bundle) -> None:
    assert _view(sliced_bundle, "alice").decision == "allow"
    mallory = _view(sliced_bundle, "mallory")
    assert (mallory.decision, [r.policy for r in mallory.reasons]) == ("deny", ["banned"])


def test_an_entity_named_in_the_context_brings_its_ancestors(sliced_bundle) -> None:
    about = {"about": {"__entity": {"type": "Doc", "id": "plans"}}}
    decision = _view(sliced_bundle, "alice", about)
    assert (decision.decision, [r.policy for r in decision.reasons]) == (
        "deny", ["classified-context"])
    assert _view(sliced_bundle, "alice", {"about": {"__entity": {"type": "Doc", "id": "menu"}}}
                 ).decision == "allow"
