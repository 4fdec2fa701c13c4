"""Trust bundles from the SPIFFE Workload API: the PDP's own trust domain and federated ones.

With ``workload_api = true`` on a ``[[trust_domains]]`` entry, its bundle comes
from the local Workload API (a SPIRE agent's socket, ``workload_api_socket`` or
``SPIFFE_ENDPOINT_SOCKET``) instead of a file or a bundle endpoint. The agent
streams the X.509 bundles (the PDP's own trust domain with its X.509-SVID, and
every federated domain as ``federated_bundles``) and the JWT bundles (a JWK Set per
trust domain); :class:`WorkloadApiBundles` follows both streams through the
``spiffe`` package (py-spiffe) and keeps the newest of each.

For the trust store each domain is one more :class:`~pdp.identity.fetch.KeyDocumentSource`
(:class:`WorkloadApiBundleReader`): reading it builds the domain's SPIFFE bundle
(``x509-svid`` entries with ``x5c``, ``jwt-svid`` entries with ``kid``) from what
the streams last said, so the same parsing, "keep the last good copy" and
maximum-age rules apply as to files and endpoints:

- every stream update makes the trust store re-read the Workload API's domains at
  once (``on_change``), so a CA the agent drops from the bundle — revoked — stops
  verifying within moments, and the verification cache is dropped with it;
- while a stream is down (the agent stopped, the socket gone) a read fails: the
  last good bundle is kept for at most ``max_age_s`` and its status says why; the
  watcher reconnects by itself, backing off from 1 s up to :data:`MAX_BACKOFF_S`;
- before the first good read there is nothing to trust: the domain's JWT-SVIDs are
  denied with ``identity.trust_stale`` naming the unavailable Workload API (the
  source is ``unavailable_until_read``), its X.509-SVIDs fail their chain.

Ref: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Workload_Endpoint.md
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from pdp.identity.trust_bundle import BundleError

log = logging.getLogger("pdp.identity")

SOCKET_ENV = "SPIFFE_ENDPOINT_SOCKET"
MAX_BACKOFF_S = 30.0
"""Longest wait between attempts to reach the Workload API again."""


@dataclass(slots=True)
class _State:
    """What the two streams last said, and whether they are up."""

    x509: dict[str, list[x509.Certificate]] = field(default_factory=dict)
    jwt: dict[str, dict[str, Any]] = field(default_factory=dict)  # kid -> public key
    x509_up: bool = False
    jwt_up: bool = False
    error: str | None = "not connected yet"
    svid: Any = None  # the PDP's own X509Svid (spiffe.X509Svid), for a TLS listener


class WorkloadApiBundles:
    """Follows the Workload API's X.509 and JWT bundle streams (call :meth:`start`).

    ``on_change`` is called (from a stream thread) after every update and every
    stream failure; the verifier passes a function that re-reads these sources.
    """

    def __init__(self, socket: str | None = None, *,
                 on_change: Callable[[], None] | None = None) -> None:
        self.socket = socket or os.environ.get(SOCKET_ENV) or ""
        self.on_change = on_change
        # Further observers of every update (the TLS listener's SVID, pdp.api.svid_tls).
        self.listeners: list[Callable[[], None]] = []
        self._state = _State()
        self._lock = threading.Lock()
        self._client: Any = None
        self._handles: list[Any] = []
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def location(self) -> str:
        return f"workload-api:{self.socket or '$' + SOCKET_ENV}"

    def start(self, wait_s: float = 2.0) -> None:
        """Connect (in the background; wait up to ``wait_s`` for the first updates)."""
        if self._supervisor is None:
            self._stopped.clear()
            self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                                name="pdp-workload-api")
            self._supervisor.start()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not self.connected:
            time.sleep(0.02)

    def close(self) -> None:
        self._stopped.set()
        self._wake.set()
        thread, self._supervisor = self._supervisor, None
        if thread is not None:
            thread.join(timeout=10)
        self._disconnect()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._state.x509_up and self._state.jwt_up

    @property
    def svid(self) -> Any:
        """The PDP's own X.509-SVID as last streamed (``spiffe.X509Svid``), or None."""
        with self._lock:
            return self._state.svid

    def document(self, trust_domain: str) -> bytes:
        """The SPIFFE bundle of ``trust_domain`` as the streams last gave it, or
        :class:`BundleError` while a stream is down or when the agent sends none for it."""
        with self._lock:
            state = self._state
            if not (state.x509_up and state.jwt_up):
                raise BundleError(f"the SPIFFE Workload API at {self.socket or '$' + SOCKET_ENV} "
                                  f"is unavailable: {state.error}")
            roots = list(state.x509.get(trust_domain, ()))
            jwt_keys = dict(state.jwt.get(trust_domain, {}))
        if not roots and not jwt_keys:
            raise BundleError(f"the Workload API sends no bundle for {trust_domain!r} (is the "
                              "PDP's registration entry federated with it?)")
        keys = [_x509_entry(c) for c in roots]
        keys += [{**_public_jwk(k), "use": "jwt-svid", "kid": kid}
                 for kid, k in sorted(jwt_keys.items())]
        return json.dumps({"keys": keys}).encode()

    # -- the streams ----------------------------------------------------------------
    def _supervise(self) -> None:
        """Keep both streams up: (re)connect whenever one ended, backing off."""
        backoff = 1.0
        while not self._stopped.is_set():
            if not self.connected:
                self._disconnect()
                try:
                    self._connect()
                except Exception as e:  # noqa: BLE001 - any failure is "unavailable"
                    self._down(f"{type(e).__name__}: {e}")
            self._wake.wait(backoff)
            self._wake.clear()
            backoff = 1.0 if self.connected else min(backoff * 2, MAX_BACKOFF_S)

    def _connect(self) -> None:
        from spiffe import WorkloadApiClient

        client = WorkloadApiClient(self.socket or None)
        self._client = client
        self._handles = [
            client.stream_x509_contexts(self._on_x509, self._on_error, retry_connect=False),
            client.stream_jwt_bundles(self._on_jwt, self._on_error, retry_connect=False)]

    def _disconnect(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles = []
        if self._client is not None:
            self._client.close()
            self._client = None

    def _on_x509(self, context: Any) -> None:
        x509_bundles = {str(b.trust_domain): list(b.x509_authorities)
                        for b in context.x509_bundle_set.bundles}
        with self._lock:
            self._state.x509, self._state.x509_up = x509_bundles, True
            self._state.svid = context.default_svid
            self._state.error = None if self._state.jwt_up else self._state.error
        self._changed()

    def _on_jwt(self, bundle_set: Any) -> None:
        jwt_bundles = {str(b.trust_domain): dict(b.jwt_authorities) for b in bundle_set.bundles}
        with self._lock:
            self._state.jwt, self._state.jwt_up = jwt_bundles, True
            self._state.error = None if self._state.x509_up else self._state.error
        self._changed()

    def _on_error(self, error: Exception) -> None:
        self._down(str(error))
        self._wake.set()

    def _down(self, error: str) -> None:
        with self._lock:
            was_up = self._state.x509_up and self._state.jwt_up
            self._state.x509_up = self._state.jwt_up = False
            self._state.error = error
        if was_up:
            log.error("the SPIFFE Workload API at %s is unavailable: %s (keeping the last "
                      "good bundles for at most their max_age_s)", self.socket, error)
        self._changed()

    def x509_authorities(self) -> list[x509.Certificate]:
        """Every X.509 authority the agent last sent (own and federated domains)."""
        with self._lock:
            return [c for certs in self._state.x509.values() for c in certs]

    def _changed(self) -> None:
        for listener in [self.on_change, *self.listeners]:
            if listener is None:
                continue
            try:
                listener()
            except Exception:  # noqa: BLE001 - a stream thread must outlive any bug
                log.exception("applying a Workload API update failed")


@dataclass(frozen=True, slots=True)
class WorkloadApiBundleReader:
    """One trust domain's bundle from :class:`WorkloadApiBundles` (a ``KeyDocumentSource``)."""

    bundles: WorkloadApiBundles
    trust_domain: str

    @property
    def location(self) -> str:
        return self.bundles.location

    def read(self) -> bytes:
        return self.bundles.document(self.trust_domain)


def _x509_entry(cert: x509.Certificate) -> dict[str, Any]:
    der = cert.public_bytes(serialization.Encoding.DER)
    return {**_public_jwk(cert.public_key()), "use": "x509-svid",
            "x5c": [base64.b64encode(der).decode()]}


def _public_jwk(key: Any) -> Mapping[str, Any]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return OKPAlgorithm.to_jwk(key, as_dict=True)
    raise BundleError(f"unsupported key type in a Workload API bundle: {type(key).__name__}")


__all__ = ["MAX_BACKOFF_S", "SOCKET_ENV", "WorkloadApiBundleReader", "WorkloadApiBundles"]
