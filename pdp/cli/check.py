"""``pdp check``: one decision in-process, through the same service as the API."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from pdp.api.models import AuthorizeItem, AuthorizeRequest
from pdp.cli.common import fail
from pdp.config import Settings
from pdp.engine.problems import BundleInvalid


def run_check(settings: Settings, body: dict[str, Any], *, principal: str | None) -> dict[str, Any]:
    """Decide ``body`` (a /v1/authorize body). With ``principal``, assert the identity instead
    of verifying a credential: for policy authors debugging a bundle, never for enforcement."""
    from pdp.audit.memory import MemoryDecisionLog
    from pdp.components import build_components

    try:
        components = build_components(settings, log=MemoryDecisionLog())
    except BundleInvalid as e:
        fail(str(e))
    try:
        if principal is not None:
            return _asserted(components, body, principal)
        try:
            request = AuthorizeRequest.model_validate(body)
        except ValidationError as e:
            fail(f"invalid request: {e}")
        return components.service.authorize_sync(
            request.to_input(request_id=None, pep="cli")).as_dict()
    finally:
        components.close()


def _asserted(components: Any, body: dict[str, Any], principal: str) -> dict[str, Any]:
    from pdp.authoring.policytests import case_identity
    from pdp.decision.decide import decide

    try:
        item = AuthorizeItem.model_validate({k: v for k, v in body.items() if k != "subject"})
    except ValidationError as e:
        fail(f"invalid request: {e}")
    now = components.clock.now()
    identity = case_identity({"principal": principal, "credential": {"age_s": 0}}, now)
    decision = decide(components.bundles.current, identity=identity, action=item.action,
                      resource=item.resource.to_ref(), context=item.context,
                      live=components.live.snapshot(identity.principal_id, now), now=now)
    out = decision.as_dict()
    out["asserted"] = True
    return out
