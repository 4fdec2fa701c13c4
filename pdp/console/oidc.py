"""OpenID Connect sign-in for the console: authorization code with PKCE, as a public client.

The flow (OpenID Connect Core 1.0 §3.1, RFC 7636 PKCE with ``S256``):

1. ``/console/oidc/login`` makes a ``state``, a ``nonce`` and a PKCE verifier,
   keeps them here (:class:`PendingLogins`, ten minutes, used once) and sends the
   browser to the provider's ``authorization_endpoint``;
2. the provider sends it back to ``/console/oidc/callback`` with a ``code``; the
   ``state`` must be one we issued (else 400: a forged or replayed callback);
3. the code is exchanged at the ``token_endpoint`` with the verifier (no client
   secret: PKCE proves the same party started the flow);
4. the ID token is verified by the PDP's own verifier — the provider is one of
   ``issuers``, its ``aud`` is the console's ``client_id`` — and its ``nonce`` must be
   the one we sent. It then *is* the session's credential: each page is
   authorized with it, so its ``sub`` and ``groups`` become the principal and its
   ``Pdp::Group`` parents (:mod:`pdp.console.access`), and the session ends when it
   expires.

Refs: https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth,
https://www.rfc-editor.org/rfc/rfc7636, https://www.rfc-editor.org/rfc/rfc9700 (§2.1.1).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt

from pdp.config import ConsoleOidcConfig

PENDING_TTL = timedelta(minutes=10)
MAX_PENDING = 10_000


class OidcError(Exception):
    """A sign-in that cannot complete; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the callback needs to finish a login it started."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next: str
    started: datetime


def pkce_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(verifier))`` (RFC 7636 §4.2, method ``S256``)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class PendingLogins:
    """Logins started and not yet finished, by ``state``; each may finish once."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingLogin] = {}
        self._lock = threading.Lock()

    def start(self, *, redirect_uri: str, next: str, now: datetime) -> PendingLogin:
        login = PendingLogin(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                             verifier=secrets.token_urlsafe(64), redirect_uri=redirect_uri,
                             next=next, started=now)
        with self._lock:
            for state in [s for s, p in self._pending.items() if now - p.started > PENDING_TTL]:
                del self._pending[state]
            if len(self._pending) >= MAX_PENDING:
                raise OidcError("too many sign-ins in progress; try again shortly")
            self._pending[login.state] = login
        return login

    def finish(self, state: str | None, now: datetime) -> PendingLogin:
        """The login ``state`` names, removed; ``OidcError`` if unknown, used or stale."""
        with self._lock:
            login = self._pending.pop(state or "", None)
        if login is None or now - login.started > PENDING_TTL:
            raise OidcError("this sign-in is unknown or expired; start again")
        return login


class OidcClient:
    """The console as a public OIDC client of one provider."""

    def __init__(self, config: ConsoleOidcConfig, *, timeout_s: float = 10.0) -> None:
        if "openid" not in config.scopes:
            raise ValueError("console_oidc.scopes must include openid")
        self.config = config
        self.timeout_s = timeout_s
        self.pending = PendingLogins()
        self._discovery: dict[str, Any] | None = None

    async def discovery(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once; its issuer must match)."""
        import httpx  # deferred, as in pdp.identity.fetch.fetch

        if self._discovery is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=self.timeout_s) as http:
                try:
                    answer = await http.get(url)
                    answer.raise_for_status()
                    document = answer.json()
                except (httpx.HTTPError, ValueError) as e:
                    raise OidcError(f"the sign-in provider is unreachable: {e}") from e
            if not isinstance(document, dict) or document.get("issuer") != self.config.issuer:
                raise OidcError("the provider's discovery document names another issuer")
            self._discovery = document
        return self._discovery

    async def authorization_url(self, login: PendingLogin) -> str:
        endpoint = (await self.discovery())["authorization_endpoint"]
        return f"{endpoint}?" + urlencode({
            "response_type": "code", "client_id": self.config.client_id,
            "redirect_uri": login.redirect_uri, "scope": " ".join(self.config.scopes),
            "state": login.state, "nonce": login.nonce,
            "code_challenge": pkce_challenge(login.verifier), "code_challenge_method": "S256"})

    async def exchange(self, login: PendingLogin, code: str) -> str:
        """The ID token for ``code`` (not yet verified: the caller verifies it)."""
        import httpx  # deferred, as in pdp.identity.fetch.fetch

        endpoint = (await self.discovery())["token_endpoint"]
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            try:
                answer = await http.post(endpoint, data={
                    "grant_type": "authorization_code", "code": code,
                    "redirect_uri": login.redirect_uri, "client_id": self.config.client_id,
                    "code_verifier": login.verifier})
                body = answer.json()
            except (httpx.HTTPError, ValueError) as e:
                raise OidcError(f"the sign-in provider did not answer: {e}") from e
        token = body.get("id_token") if isinstance(body, dict) else None
        if answer.status_code != 200 or not isinstance(token, str):
            raise OidcError(f"the provider refused the sign-in ({answer.status_code})")
        return token


def id_token_nonce(id_token: str) -> str | None:
    """The ``nonce`` claim; read only after the verifier has checked the signature."""
    claims = jwt.decode(id_token, options={"verify_signature": False})
    nonce = claims.get("nonce")
    return nonce if isinstance(nonce, str) else None


__all__ = ["OidcClient", "OidcError", "PendingLogin", "PendingLogins", "id_token_nonce",
           "pkce_challenge"]
