"""A local JWT-SVID issuer for development (``pdp serve --dev``): never for production.

It plays the part of SPIRE for trust domain ``example.org``: one ES256 (P-256)
key, created once under ``<state_dir>/dev/jwt-svid-key.pem`` (mode 0600) and
named by its RFC 7638 thumbprint; a SPIFFE bundle publishing its public half;
and :meth:`DevIssuer.mint` to make JWT-SVIDs that the PDP then verifies like
any other.
Refs: https://github.com/spiffe/spiffe/blob/main/standards/JWT-SVID.md,
https://www.rfc-editor.org/rfc/rfc7638

Example::

    dev = DevIssuer.load_or_create(Path(".pdp"))
    token = dev.mint("spiffe://example.org/billing", scopes=["invoices:read"])
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from pdp.identity.errors import BadSpiffeId
from pdp.identity.jwk import JwtKey, jwk_thumbprint_input
from pdp.identity.spiffe_id import parse_spiffe_id

DEV_TRUST_DOMAIN = "example.org"
KEY_FILE = Path("dev") / "jwt-svid-key.pem"


@dataclass(frozen=True, slots=True)
class DevIssuer:
    """The dev signing key of ``example.org`` and its ``kid``."""

    private_key: ec.EllipticCurvePrivateKey
    kid: str
    trust_domain: str = DEV_TRUST_DOMAIN

    @classmethod
    def load_or_create(cls, state_dir: Path) -> DevIssuer:
        """Load the key from ``state_dir``, creating it (0600, once) if absent."""
        path = state_dir / KEY_FILE
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            _create_key_file(path)
        except FileExistsError:
            pass  # created earlier, or by a concurrent process: use that one
        return cls.from_private_key(load_key_file(path))

    @classmethod
    def from_private_key(cls, private_key: ec.EllipticCurvePrivateKey) -> DevIssuer:
        """A dev issuer for an existing P-256 key; the ``kid`` is its RFC 7638 thumbprint."""
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("the dev issuer key must be EC P-256")
        return cls(private_key=private_key, kid=_thumbprint(_public_jwk(private_key)))

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as a ``jwt-svid`` bundle entry."""
        return {"use": "jwt-svid", "kid": self.kid, **_public_jwk(self.private_key)}

    @property
    def jwt_key(self) -> JwtKey:
        """The public key as the verifier holds it."""
        return JwtKey(kid=self.kid, public_key=self.private_key.public_key(), key_type="EC")

    def bundle_json(self) -> str:
        """A SPIFFE bundle for ``example.org`` holding only the dev key."""
        return json.dumps({"keys": [self.public_jwk], "spiffe_sequence": 1}, indent=2)

    def write_bundle(self, path: Path) -> None:
        """Write :meth:`bundle_json` to ``path``."""
        path.write_text(self.bundle_json() + "\n", encoding="utf-8")

    def mint(
        self,
        spiffe_id: str,
        *,
        audience: str = "pdp",
        ttl_s: int = 300,
        scopes: Sequence[str] = (),
        now: datetime | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        """A JWT-SVID for ``spiffe_id`` (of ``example.org``), valid ``ttl_s`` seconds from ``now``.

        Raises ``ValueError`` for an invalid SPIFFE ID, another trust domain or a bad ttl.
        """
        try:
            subject = parse_spiffe_id(spiffe_id)
        except BadSpiffeId as e:
            raise ValueError(f"not a SPIFFE ID ({e.reason}): {spiffe_id!r}") from e
        if subject.trust_domain != self.trust_domain:
            raise ValueError(f"the dev issuer only mints SVIDs of {self.trust_domain}")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        issued = int((now or datetime.now(UTC)).timestamp())
        claims: dict[str, Any] = {
            "sub": str(subject), "aud": audience, "iat": issued, "exp": issued + ttl_s,
            "jti": str(uuid.uuid4()),
        }
        if scopes:
            claims["scope"] = " ".join(scopes)
        claims.update(extra_claims or {})
        return jwt.encode(claims, self.private_key, algorithm="ES256",
                          headers={"kid": self.kid, "typ": "JWT"})


def _create_key_file(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    # O_EXCL: never overwrite an existing key; 0o600 from the first byte written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def load_key_file(path: Path) -> ec.EllipticCurvePrivateKey:
    """The EC private key in the PEM file ``path`` (refused if others can read it)."""
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} is readable by other users; chmod 600 it")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return key


def _public_jwk(private_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {name: jwk[name] for name in ("kty", "crv", "x", "y")}


def _thumbprint(jwk: dict[str, str]) -> str:
    digest = hashlib.sha256(jwk_thumbprint_input(jwk)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


__all__ = ["DEV_TRUST_DOMAIN", "DevIssuer"]
