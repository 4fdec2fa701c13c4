"""Cedar's own example bundles (tests/cedar_examples, see its NOTICE) load, unchanged,
and their own requests decide as Cedar decides them.

The reference is raw ``cedarpy.is_authorized`` on the example's own policy text,
entities and schema (no ``Pdp`` namespace); the PDP decides through ``decide()``
with the request's principal asserted, as a trusted AuthZEN PEP would.
"""

from __future__ import annotations

import json
from pathlib import Path

import cedarpy
import pytest

from context.model import LiveSnapshot
from pdp.decision.decide import asserted_principal, decide
from pdp.decision.model import AssertedSubject, ResourceRef
from pdp.engine import load_bundle
from pdp.engine.validation import generated_id
from tests.conftest import MONDAY_10

EXAMPLES = Path(__file__).parent.parent / "cedar_examples"
LOADING = sorted(d.name for d in EXAMPLES.iterdir() if d.is_dir())
LIVE = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)


def _uid(text: str) -> tuple[str, str]:
    type_, _, quoted = text.partition('::"')
    return type_, json.loads('"' + quoted[:-1] + '"')


def _requests(name: str) -> list[tuple[str, Path]]:
    return [(kind, q) for kind in ("ALLOW", "DENY")
            for q in sorted((EXAMPLES / name / "requests" / kind).glob("*.json"))]


@pytest.mark.parametrize("name", LOADING)
def test_cedar_example_loads(name: str) -> None:
    bundle = load_bundle(EXAMPLES / name)
    text = (EXAMPLES / name / "policies.cedar").read_text()
    raw = cedarpy.PolicySet.from_str(text)
    assert len(bundle.policies) == len(raw) + len(raw.templates())


def test_every_example_with_requests_is_checked() -> None:
    assert sum(len(_requests(name)) for name in LOADING) >= 40


@pytest.mark.parametrize("name", [n for n in LOADING if _requests(n)])
def test_cedar_example_requests_decide_as_cedar_does(name: str) -> None:
    directory = EXAMPLES / name
    bundle = load_bundle(directory)
    text = (directory / "policies.cedar").read_text()
    entities_file = directory / "entities.json"
    entities = entities_file.read_text() if entities_file.exists() else "[]"
    schema = (directory / "schema.cedarschema").read_text()
    templated = bool(cedarpy.PolicySet.from_str(text).templates())
    for kind, path in _requests(name):
        request = json.loads(path.read_text())
        raw = cedarpy.is_authorized(request, text, entities, schema=schema)
        ptype, pid = _uid(request["principal"])
        rtype, rid = _uid(request["resource"])
        identity, principal = asserted_principal(
            AssertedSubject(type=ptype, id=pid, asserted_by="test", properties=None))
        ours = decide(bundle, identity=identity, action=request["action"],
                      resource=ResourceRef(type=rtype, id=rid),
                      context=request.get("context") or {}, live=LIVE, now=MONDAY_10,
                      principal=principal)
        assert ours.decision == ("allow" if raw.allowed else "deny"), (path, ours.errors)
        expected = sorted(raw.diagnostics.id_annotations_by_reason.get(
            r, generated_id("policies.cedar", int(r.removeprefix("policy"))))
            for r in raw.diagnostics.reasons)
        assert sorted(r.policy for r in ours.reasons) == expected, path
        if entities_file.exists() and not templated:
            # The example's own verdict (its templated twins need links it keeps apart).
            assert raw.allowed == (kind == "ALLOW"), path


def test_document_cloud_loads_leaving_out_the_pdp_group_its_own_group_would_shadow() -> None:
    warnings = [str(w) for w in load_bundle(EXAMPLES / "document_cloud").warnings]
    assert any("declares `Group` outside any namespace" in w and "Pdp::Group is left out" in w
               for w in warnings)
