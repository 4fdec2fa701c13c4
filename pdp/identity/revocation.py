"""A live deny-list: credentials and workloads refused although they verify.

Short-lived SVIDs make revocation rare, but an incident cannot wait for
expiry. Entries take effect on the next verification, cached or not: a
certificate by (issuer DN, serial), a workload by SPIFFE ID (as subject or as
the current RFC 8693 actor), a JWT by its SHA-256.
"""

from __future__ import annotations

import threading
from typing import Protocol

from pdp.identity.errors import Revoked
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import parse_spiffe_id


class RevocationCheck(Protocol):
    """What the verifier asks after every verification, cached or not.

    :class:`DenyList` is the in-process one; a shared store (e.g. revocations
    kept in Redis by the live-context layer) can stand in for it.
    """

    def check(self, identity: VerifiedIdentity) -> None:
        """Raise :class:`~pdp.identity.errors.Revoked` if ``identity`` must be refused."""


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

    def check(self, identity: VerifiedIdentity) -> None:
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


__all__ = ["DenyList", "RevocationCheck"]
