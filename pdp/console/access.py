"""Authorizing a console page: the session's person, asked of the bundle's policies.

The console adds no rules of its own. Every page and action names the admin
action it needs (``audit.read`` for the decisions, ``context.incident.set`` to
declare an incident, ...) and :func:`authorize_page` asks
:func:`pdp.api.admin_auth.authorize_admin` — the very function behind the JSON
admin API — with the session's credential: the decision is logged, and the
bundle's ``Pdp::Action`` policies decide who sees what.

How a person becomes a Cedar principal:

- **OIDC sign-in**: the ID token is the credential. The provider is configured
  as an issuer (``issuers`` with ``groups_claim``), so the verifier makes its
  ``sub`` (or the configured ``principal_claim``) the ``Pdp::Workload`` id and
  each group a ``Pdp::Group`` parent, exactly as for a service's JWT.
- **``--dev`` sign-in**: the person picks a workload of the bundle's
  ``entities.json``, listed under its groups; the console mints a fresh
  one-minute JWT-SVID for it from the dev issuer at each request, so its groups
  come from the bundle and its credential is always fresh.
"""

from __future__ import annotations

from pdp.api.admin_auth import AdminCaller, authorize_admin
from pdp.components import Components
from pdp.console.session import Session
from pdp.identity.model import BearerToken, Credential

PEP = "console"
"""The ``pep`` of every decision the console asks for (filter the log on it)."""

DEV_TOKEN_TTL_S = 60


def session_credential(components: Components, session: Session) -> Credential | None:
    """The credential a page is authorized with; None when it cannot be had (then 401)."""
    if session.dev_principal is not None:
        if components.dev_issuer is None or not components.settings.dev:
            return None  # a dev session never works on a server that is not --dev
        return BearerToken(components.dev_issuer.mint(
            session.dev_principal, audience=components.settings.audience,
            ttl_s=DEV_TOKEN_TTL_S, now=components.clock.now()))
    return session.credential


async def authorize_page(components: Components, session: Session, action: str,
                         request_id: str | None) -> AdminCaller:
    """The caller, if the bundle permits ``action`` to the session's person; raises
    :class:`pdp.api.admin_auth.AdminRefused` otherwise."""
    return await authorize_admin(components, session_credential(components, session), action,
                                 request_id=request_id, pep=PEP)


__all__ = ["DEV_TOKEN_TTL_S", "PEP", "authorize_page", "session_credential"]
