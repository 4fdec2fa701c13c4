"""A decision and its record name the bundle version the request started with, even when a
reload swaps the bundle while the request is on its way (issue 15: one bundle per request)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from context.clock import FixedClock
from pdp.audit import MemoryDecisionLog
from pdp.decision.model import AuthorizeInput, DecisionError, ResourceRef
from pdp.decision.service import DecisionService
from pdp.engine import load_bundle
from pdp.engine.bundle import Bundle
from pdp.reasons import ReasonCode
from tests.conftest import MONDAY_10


class ReloadingBundles:
    """A bundle store under constant reloads: each read of ``current`` gets the next one."""

    def __init__(self, bundles: list[Bundle]) -> None:
        self._bundles, self._reads = bundles, 0

    @property
    def current(self) -> Bundle:
        self._reads += 1
        return self._bundles[self._reads % len(self._bundles)]


@pytest.fixture
def two_versions(bundle_copy: Callable[[], Path], tmp_path: Path) -> list[Bundle]:
    first_dir = bundle_copy()
    first = load_bundle(first_dir)
    second_dir = shutil.copytree(first_dir, tmp_path / "second")  # one more file
    (second_dir / "extra.cedar").write_text(
        '@id("extra") @reason("Another version.")\n'
        'forbid (principal, action, resource) when { false };\n')
    second = load_bundle(second_dir)
    assert first.version != second.version
    return [first, second]


@pytest.mark.anyio
async def test_a_refused_request_names_one_version_in_its_decision_and_record(
        two_versions: list[Bundle]) -> None:
    log = MemoryDecisionLog()
    service = DecisionService(bundles=ReloadingBundles(two_versions),  # type: ignore[arg-type]
                              verifier=None, live=None, log=log,  # type: ignore[arg-type]
                              clock=FixedClock(MONDAY_10))
    decision = await service.authorize(AuthorizeInput(
        credential=None, action="read", resource=ResourceRef(type="App::Dataset", id="x"),
        refused=DecisionError(ReasonCode.REQUEST_NO_ROUTE, "no route")))
    record: dict[str, Any] = next(iter(log.iter_all()))
    started_with = two_versions[1]  # the first read of `current`
    assert decision.decision == "deny"
    assert decision.policy_version == started_with.version.as_dict()
    assert record["policy_version"] == decision.policy_version
