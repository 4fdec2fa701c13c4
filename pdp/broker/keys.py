"""The broker's signing keys: one signs, retired ones stay published through an overlap.

Issued credentials are ES256 JWTs (ECDSA on P-256, RFC 7518 §3.4) named by the
``kid`` of their key, the key's RFC 7638 thumbprint. The public halves are
published as a JWK Set (``GET /v1/broker/jwks.json``), which is also what the
PDP's own verifier trusts (:mod:`pdp.broker.trust`).

Rotation keeps tokens alive: :meth:`BrokerKeyring.rotate` makes a new key the
signer and keeps the old one *published* until ``now + overlap``, so a token it
signed a moment ago still verifies for its whole (short) life; after the
overlap the old key leaves the JWKS and every token it signed is refused.
Refs: https://www.rfc-editor.org/rfc/rfc7638, https://www.rfc-editor.org/rfc/rfc7517#section-5

Example::

    ring = BrokerKeyring.load(settings.broker, state_dir=Path(".pdp"), dev=True)
    token = jwt.encode(claims, ring.current.private_key, algorithm="ES256",
                       headers={"kid": ring.current.kid, "typ": "at+jwt"})
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from pdp.config import BrokerConfig
from pdp.identity.dev_issuer import load_key_file
from pdp.identity.jwk import jwk_thumbprint_input

ALGORITHM = "ES256"
DEV_KEY_FILE = Path("dev") / "broker-key.pem"


@dataclass(frozen=True, slots=True)
class BrokerKey:
    """One P-256 key; ``retire_at`` None while it signs, else the end of its overlap."""

    private_key: ec.EllipticCurvePrivateKey
    kid: str
    retire_at: datetime | None = None

    @classmethod
    def of(cls, private_key: ec.EllipticCurvePrivateKey,
           retire_at: datetime | None = None) -> BrokerKey:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("a broker key must be EC P-256 (ES256)")
        return cls(private_key, _thumbprint(private_key), retire_at)

    @classmethod
    def generate(cls) -> BrokerKey:
        return cls.of(ec.generate_private_key(ec.SECP256R1()))

    def published_at(self, now: datetime) -> bool:
        return self.retire_at is None or now < self.retire_at

    @property
    def public_jwk(self) -> dict[str, str]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"kty": "EC", "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"],
                "kid": self.kid, "use": "sig", "alg": ALGORITHM}


class BrokerKeyring:
    """The signing key and the retired keys still inside their overlap (thread-safe)."""

    def __init__(self, current: BrokerKey, retired: list[BrokerKey] | None = None) -> None:
        self._lock = threading.Lock()
        self._current = current
        self._retired = list(retired or [])

    @classmethod
    def load(cls, config: BrokerConfig, *, state_dir: Path, dev: bool) -> BrokerKeyring | None:
        """From ``config.key_file`` (and ``retired_keys``); the dev key under ``state_dir``
        in ``--dev`` when no file is configured; None (no broker) otherwise."""
        if not config.enabled:
            return None
        if config.key_file is not None:
            current = BrokerKey.of(load_key_file(config.key_file))
        elif dev:
            path = state_dir / DEV_KEY_FILE
            create_key_file(path)
            current = BrokerKey.of(load_key_file(path))
        else:
            return None
        retired = [BrokerKey.of(load_key_file(r.key_file), r.until) for r in config.retired_keys]
        return cls(current, retired)

    @property
    def current(self) -> BrokerKey:
        return self._current

    def rotate(self, new: BrokerKey, *, now: datetime, overlap_s: int) -> None:
        """Sign with ``new`` from now on; keep the old key published for ``overlap_s``."""
        with self._lock:
            old = BrokerKey(self._current.private_key, self._current.kid,
                            now + timedelta(seconds=overlap_s))
            self._retired = [k for k in self._retired if k.published_at(now)] + [old]
            self._current = new

    def published(self, now: datetime) -> list[BrokerKey]:
        """The keys whose tokens verify at ``now``: the signer, then retired ones in overlap."""
        with self._lock:
            return [self._current] + [k for k in self._retired if k.published_at(now)]

    def jwks(self, now: datetime) -> dict[str, Any]:
        """The JWK Set to publish at ``now`` (public halves only)."""
        return {"keys": [k.public_jwk for k in self.published(now)]}


def create_key_file(path: Path) -> None:
    """A new P-256 key at ``path`` (0600 from the first byte; never overwrites one)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # made earlier, or by a concurrent worker: use that one
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _thumbprint(private_key: ec.EllipticCurvePrivateKey) -> str:
    jwk: dict[str, str] = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    digest = hashlib.sha256(jwk_thumbprint_input(
        {"kty": "EC", "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]})).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


__all__ = ["ALGORITHM", "BrokerKey", "BrokerKeyring", "create_key_file", "load_key_file"]
