"""This service's own JWT-SVID from the SPIFFE Workload API: no secret in code or environment.

The SPIFFE Workload API (a local unix socket served by the SPIRE agent, named by
``SPIFFE_ENDPOINT_SOCKET``) hands a workload the SVIDs its registration entry
gives it. :class:`WorkloadApiToken` asks it for a JWT-SVID for the PDP's audience
and is a token source: give it to a client as ``pep_token`` and every request to
the PDP carries a current JWT-SVID::

    from pdp_client import AsyncPDPClient
    from pdp_client.workload_api import WorkloadApiToken

    pdp = AsyncPDPClient("https://pdp.internal:8443",
                         pep_token=WorkloadApiToken(audience="spiffe://example.org/pdp"))

How the token is kept (the ``spiffe`` package, py-spiffe, does the gRPC):

- **Cached**, and **refreshed before expiry**: once ``refresh_fraction`` (half) of
  its lifetime has passed, the next call still returns the cached token and starts
  a refresh in a background thread, so a request never waits on the socket while
  the token is good. Only a missing or expired token is fetched while the caller
  waits (at most ``timeout_s``).
- **Dropped on rotation**: the source watches the JWT bundles (``FetchJWTBundles``);
  when they change — a signing key added or retired — the cached token is dropped
  and the next call fetches one signed by the current key.
- **Fails closed**: no socket, a socket that does not answer, or an empty answer is
  :class:`~pdp_client.errors.CredentialUnavailable` (``pdp.credential_unavailable``),
  which the clients turn into a deny with that reason code, like an unreachable PDP.

Install with ``pip install 'pdp-client[spiffe]'``.
Ref: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Workload_API.md
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pdp_client.errors import CredentialUnavailable

log = logging.getLogger("pdp_client.workload_api")

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_REFRESH_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str
    fetched_at: float
    expires_at: float

    def refresh_due(self, now: float, fraction: float) -> bool:
        return now >= self.fetched_at + (self.expires_at - self.fetched_at) * fraction


class WorkloadApiToken:
    """A JWT-SVID for ``audience`` from the Workload API, as a token source (call it).

    Args:
        audience: the PDP's audience (its ``audience`` setting), or several.
        socket: ``unix:///path`` of the Workload API; default ``SPIFFE_ENDPOINT_SOCKET``.
        timeout_s: longest wait for the Workload API when no usable token is cached.
        refresh_fraction: refresh once this fraction of the token's lifetime has passed.
        watch_bundles: drop the cached token when the trust domain's JWT keys change.
        clock: seconds since the epoch (tests).
    """

    def __init__(self, audience: str | Sequence[str], *, socket: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 refresh_fraction: float = DEFAULT_REFRESH_FRACTION,
                 watch_bundles: bool = True, clock: Callable[[], float] = time.time) -> None:
        audiences = {audience} if isinstance(audience, str) else set(audience)
        if not audiences or not all(audiences):
            raise ValueError("audience must name at least one non-empty audience")
        if not 0 < refresh_fraction <= 1:
            raise ValueError("refresh_fraction must be in (0, 1]")
        self.audience = frozenset(audiences)
        self.socket = socket
        self.timeout_s, self.refresh_fraction = timeout_s, refresh_fraction
        self.watch_bundles = watch_bundles
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _Cached | None = None
        self._refreshing = False
        self._client: Any = None  # spiffe.WorkloadApiClient, made on first use
        self._watch: Any = None   # its bundle stream's cancel handle
        self._bundles_seen = 0
        self.fetches = 0  # Workload API calls made (tests and metrics read it)

    def __call__(self) -> str:
        """The current JWT-SVID; raises :class:`CredentialUnavailable` when there is none."""
        now = self._clock()
        cached = self._cached
        if cached is not None and now < cached.expires_at:
            if cached.refresh_due(now, self.refresh_fraction):
                self._refresh_in_background()
            return cached.token
        with self._lock:  # one caller fetches; the others wait for its answer
            cached = self._cached
            if cached is not None and self._clock() < cached.expires_at:
                return cached.token
            return self._fetch().token

    def invalidate(self) -> None:
        """Forget the cached token: the next call fetches a new one."""
        self._cached = None

    def close(self) -> None:
        """Stop watching the bundles and close the connection to the Workload API."""
        with self._lock:
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> WorkloadApiToken:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------
    def _fetch(self) -> _Cached:
        """Ask the Workload API (caller holds the lock)."""
        from spiffe.errors import PySpiffeError

        try:
            client = self._connect()
            self.fetches += 1
            svid = client.fetch_jwt_svid(audience=set(self.audience), timeout=self.timeout_s)
        except (PySpiffeError, OSError) as e:
            raise CredentialUnavailable(
                f"no JWT-SVID from the SPIFFE Workload API at "
                f"{self.socket or '$SPIFFE_ENDPOINT_SOCKET'}: {e}") from e
        now = self._clock()
        if svid.expiry <= now:
            raise CredentialUnavailable("the Workload API returned an expired JWT-SVID")
        self._cached = _Cached(svid.token, now, float(svid.expiry))
        return self._cached

    def _connect(self) -> Any:
        if self._client is None:
            from spiffe import WorkloadApiClient

            self._client = WorkloadApiClient(self.socket)
            if self.watch_bundles:
                self._watch = self._client.stream_jwt_bundles(self._on_bundles, self._on_error)
        return self._client

    def _on_bundles(self, bundles: Any) -> None:
        # The stream sends the current bundles first: only a later message is a change.
        self._bundles_seen += 1
        if self._bundles_seen > 1:
            log.info("JWT bundles changed: dropping the cached JWT-SVID")
            self._cached = None

    @staticmethod
    def _on_error(error: Exception) -> None:
        log.warning("the Workload API's JWT bundle stream ended: %s", error)

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._background_refresh, daemon=True,
                         name="pdp-client-svid-refresh").start()

    def _background_refresh(self) -> None:
        try:
            with self._lock:
                self._fetch()
        except CredentialUnavailable as e:  # the cached token stays until it expires
            log.warning("refreshing the JWT-SVID failed (the cached one is kept): %s", e)
        finally:
            self._refreshing = False


__all__ = ["WorkloadApiToken"]
