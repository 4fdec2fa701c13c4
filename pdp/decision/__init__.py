"""The Decision model and the one way to reach one: ``decide()`` / ``DecisionService``."""

from pdp.decision.decide import decide, new_decision_id
from pdp.decision.model import AuthorizeInput, Decision, DecisionError, Reason, ResourceRef
from pdp.reasons import ReasonCode

__all__ = [
    "AuthorizeInput", "Decision", "DecisionError", "Reason", "ReasonCode", "ResourceRef",
    "decide", "new_decision_id",
]
