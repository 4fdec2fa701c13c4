"""One JSON Web Key (RFC 7517) turned into a public key we can verify JWTs with.

Both readers of key sets, :mod:`pdp.identity.trust_bundle` (SPIFFE bundles)
and :mod:`pdp.identity.jwks` (plain OAuth JWKS), build their keys here, so the
two cannot disagree on what a usable key is: RSA (at least 2048 bits) or EC on
P-256/P-384/P-521, public members only. The key objects are built with pyjwt's
``from_jwk`` on the single entry, never with ``PyJWKClient``/``PyJWKSet``, which
keep entries of any ``use`` (``x509-svid``, ``wit-svid``) as ordinary keys.
Ref: https://www.rfc-editor.org/rfc/rfc7517#section-4
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWTError

from pdp.identity.algorithms import ALGORITHMS, MIN_RSA_BITS, KeyType, PublicKey, key_fits

# Members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_REQUIRED_MEMBERS: dict[str, tuple[str, ...]] = {"RSA": ("n", "e"), "EC": ("crv", "x", "y")}
_CURVES = frozenset({"P-256", "P-384", "P-521"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class UnusableJwk(ValueError):
    """This JWK cannot serve as a JWT signing key; ``str(e)`` says why."""


@dataclass(frozen=True, slots=True)
class JwtKey:
    """A public key that verifies JWT signatures, named by its ``kid``.

    ``alg`` is the JWK's own ``alg`` member when it pins one: the token's
    ``alg`` must then equal it.
    """

    kid: str
    public_key: PublicKey
    key_type: KeyType
    alg: str | None = None

    def accepts(self, alg: str) -> bool:
        """True if a token signed with ``alg`` may be verified with this key."""
        algorithm = ALGORITHMS.get(alg)
        if algorithm is None or (self.alg is not None and self.alg != alg):
            return False
        return key_fits(algorithm, self.public_key)


def jwt_key_from_jwk(entry: Mapping[str, Any], *, kid: str) -> JwtKey:
    """Build the :class:`JwtKey` of one JWK entry or raise :class:`UnusableJwk`.

    ``kid`` is passed in because the two key-set formats differ on where it may
    be missing; here it only labels the key.
    """
    kty = entry.get("kty")
    if kty == "oct":
        raise UnusableJwk("kty 'oct' is a shared secret, never a verification key")
    if not isinstance(kty, str) or kty not in _REQUIRED_MEMBERS:
        raise UnusableJwk(f"unsupported kty {kty!r}")
    if _PRIVATE_MEMBERS & entry.keys():
        raise UnusableJwk("entry carries private key members")
    _check_members(entry, kty)
    alg = _pinned_alg(entry)
    public_key = _public_key(entry, kty)
    key_type: KeyType = "RSA" if kty == "RSA" else "EC"  # the two kty checked above
    key = JwtKey(kid=kid, public_key=public_key, key_type=key_type, alg=alg)
    if alg is not None and not key.accepts(alg):
        raise UnusableJwk(f"alg {alg!r} does not fit this {kty} key")
    return key


def jwk_thumbprint_input(entry: Mapping[str, str]) -> bytes:
    """The RFC 7638 thumbprint input: required members only, sorted, no whitespace."""
    members = _REQUIRED_MEMBERS[entry["kty"]] + ("kty",)
    body = ",".join(f'"{name}":"{entry[name]}"' for name in sorted(members))
    return ("{" + body + "}").encode("ascii")


def _check_members(entry: Mapping[str, Any], kty: str) -> None:
    for name in _REQUIRED_MEMBERS[kty]:
        value = entry.get(name)
        if not isinstance(value, str) or not value:
            raise UnusableJwk(f"{kty} key needs a string {name!r}")
        if name != "crv" and not _BASE64URL.fullmatch(value):
            raise UnusableJwk(f"{name!r} is not base64url")
    if kty == "EC" and entry["crv"] not in _CURVES:
        raise UnusableJwk(f"unsupported curve {entry['crv']!r}")


def _pinned_alg(entry: Mapping[str, Any]) -> str | None:
    alg = entry.get("alg")
    if alg is None:
        return None
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise UnusableJwk(f"alg {alg!r} is not an accepted JWS algorithm")
    return alg


def _public_key(entry: Mapping[str, Any], kty: str) -> PublicKey:
    # Only the members from_jwk needs: nothing unexpected reaches pyjwt.
    members = {name: entry[name] for name in _REQUIRED_MEMBERS[kty]} | {"kty": kty}
    try:
        key = (RSAAlgorithm.from_jwk(members) if kty == "RSA" else ECAlgorithm.from_jwk(members))
    except (PyJWTError, ValueError, TypeError) as e:
        raise UnusableJwk(f"invalid {kty} key: {e}") from e
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise UnusableJwk(f"RSA key of {key.key_size} bits (minimum {MIN_RSA_BITS})")
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise UnusableJwk("not a public key")
    return key


__all__ = ["JwtKey", "UnusableJwk", "jwk_thumbprint_input", "jwt_key_from_jwk"]
