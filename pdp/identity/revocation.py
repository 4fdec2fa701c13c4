"""Live revocation: credentials and workloads refused although they verify.

Short-lived SVIDs make revocation rare, but an incident cannot wait for
expiry. The verifier asks a :class:`RevocationCheck` after every verification,
cached or not, so an entry takes effect on the very next request.

- :class:`StoreRevocationCheck` consults a ``context.revocations.RevocationStore``
  (by jti, certificate, SPIFFE ID or prefix, issuer-before-time): what the
  admin API and ``pdp revoke`` manage, shared between replicas by its backend.
- :class:`DenyList` is a small in-process list (certificate, SPIFFE ID, token
  hash) for embedding and tests.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pdp.identity.errors import RevocationUnknown, Revoked
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import parse_spiffe_id

if TYPE_CHECKING:
    from context.revocations import RevocationStore


class RevocationCheck(Protocol):
    """What the verifier asks after every verification, cached or not.

    :class:`DenyList` is the in-process one; a shared store (e.g. revocations
    kept in Redis by the live-context layer) can stand in for it.
    """

    def check(self, identity: VerifiedIdentity, now: datetime) -> None:
        """Raise :class:`~pdp.identity.errors.Revoked` if ``identity`` must be refused at
        ``now``."""


class StoreRevocationCheck:
    """The verifier's view of a :class:`context.revocations.RevocationStore`.

    Example::

        store = InMemoryRevocationStore()
        verifier = IdentityVerifier.from_settings(settings, deny_list=StoreRevocationCheck(store))
        store.add(new_revocation("jti", "3f2c..."))   # the next verify() raises Revoked
    """

    def __init__(self, store: RevocationStore) -> None:
        self.store = store

    def check(self, identity: VerifiedIdentity, now: datetime) -> None:
        # A store that can tell (context.durable) says whether its copy is current:
        # if it is not, a revoked credential could pass, so none does.
        known = getattr(self.store, "known", None)
        if known is not None and not known():
            raise RevocationUnknown("the current revocations are unknown (their store could "
                                    "not be read recently); no credential is accepted",
                                    reason="revocation-state-unknown")
        entry = self.store.check(identity, now)
        if entry is None:
            return
        why = f": {entry.reason}" if entry.reason else ""
        raise Revoked(f"{_describe(entry)} (revocation {entry.id}{why})",
                      reason=f"revoked-{entry.kind.replace('_', '-')}")


def _describe(entry: Any) -> str:
    if entry.kind == "jti":
        return f"token jti {entry.value!r} is revoked"
    if entry.kind == "cert":
        return f"certificate serial {entry.value} of {entry.issuer} is revoked"
    if entry.kind == "spiffe_id":
        return f"workload {entry.value} is revoked"
    if entry.kind == "spiffe_prefix":
        return f"workloads under {entry.value} are revoked"
    before = entry.before.isoformat() if entry.before else "?"
    return f"credentials issued by {entry.value} before {before} are revoked"


class DenyList:
    """Thread-safe sets of revoked certificates, SPIFFE IDs and token hashes.

    Example::

        deny = DenyList()
        deny.revoke_spiffe_id("spiffe://example.org/ns/prod/sa/compromised")
        deny.check(identity)   # raises Revoked
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._certificates: frozenset[tuple[str, str]] = frozenset()
        self._spiffe_ids: frozenset[str] = frozenset()
        self._credentials: frozenset[str] = frozenset()

    def revoke_certificate(self, issuer: str, serial: int | str) -> None:
        """Refuse the certificate ``serial`` (int, or hex string) of ``issuer`` (RFC 4514 DN)."""
        entry = (issuer, _serial_hex(serial))
        with self._lock:
            self._certificates = self._certificates | {entry}

    def revoke_spiffe_id(self, spiffe_id: str) -> None:
        """Refuse every credential whose subject or current actor is ``spiffe_id``."""
        canonical = str(parse_spiffe_id(spiffe_id))
        with self._lock:
            self._spiffe_ids = self._spiffe_ids | {canonical}

    def revoke_credential(self, sha256_hex: str) -> None:
        """Refuse one credential by the ``credential_sha256`` of its verified identity."""
        with self._lock:
            self._credentials = self._credentials | {sha256_hex.lower()}

    def check(self, identity: VerifiedIdentity, now: datetime | None = None) -> None:
        """Raise :class:`Revoked` if ``identity`` or its current actor is on the list."""
        if identity.serial is not None and (identity.issuer, identity.serial) in self._certificates:
            raise Revoked("certificate is revoked", reason="revoked-certificate")
        if identity.principal_id in self._spiffe_ids:
            raise Revoked("workload is revoked", reason="revoked-spiffe-id")
        if identity.actor is not None and identity.actor in self._spiffe_ids:
            raise Revoked("acting workload is revoked", reason="revoked-actor")
        if identity.credential_sha256 in self._credentials:
            raise Revoked("credential is revoked", reason="revoked-credential")


def _serial_hex(serial: int | str) -> str:
    value = serial if isinstance(serial, int) else int(serial.replace(":", ""), 16)
    return format(value, "x")


__all__ = ["DenyList", "RevocationCheck", "StoreRevocationCheck"]
