"""Everything ``decide()`` takes besides the bundle, as one value.

Built from a policy test case (``pdp.authoring.policytests``) or from a decision record
(``pdp.authoring.replay``), and decided again under any bundle: the current one,
the recorded one, or a candidate under review (``pdp.authoring.impact``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from context.model import LiveSnapshot
from pdp.decision.decide import decide, diagnose_request
from pdp.decision.model import Decision, ResourceRef
from pdp.engine.bundle import Bundle
from pdp.engine.grants import Grant
from pdp.engine.whynot import PolicyDiagnosis
from pdp.identity.model import VerifiedIdentity


@dataclass(frozen=True, slots=True)
class DecideInputs:
    identity: VerifiedIdentity
    action: str
    resource: ResourceRef
    context: Mapping[str, Any]
    live: LiveSnapshot
    now: datetime
    grants: tuple[Grant, ...] = ()
    # The Cedar principal when a trusted PEP asserted it rather than a credential proving it.
    principal: Any = None
    # Keep this id on the decision (a replay answers for the recorded decision).
    decision_id: str | None = None

    def decide(self, bundle: Bundle | None, *, explain: bool | None = None) -> Decision:
        extra: dict[str, Any] = {}
        if self.principal is not None:
            extra["principal"] = self.principal
        if self.decision_id is not None:
            decision_id = self.decision_id
            extra["decision_id"] = lambda: decision_id
        return decide(bundle, identity=self.identity, action=self.action,
                      resource=self.resource, context=self.context, live=self.live,
                      now=self.now, grants=self.grants, explain=explain, **extra)

    def diagnose(self, bundle: Bundle) -> tuple[PolicyDiagnosis, ...]:
        """Every in-scope policy diagnosed (for coverage)."""
        return diagnose_request(bundle, identity=self.identity, action=self.action,
                                resource=self.resource, context=self.context, live=self.live,
                                now=self.now, grants=self.grants)
