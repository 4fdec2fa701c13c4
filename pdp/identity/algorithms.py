"""The JWS signature algorithms we accept, and how each one verifies.

Only asymmetric algorithms (RFC 7518 §3): RSASSA-PKCS1-v1_5, ECDSA and
RSASSA-PSS. ``HS*`` are refused because a verifier holding the "public" key
could then forge tokens (the classic RS256→HS256 confusion), and ``none`` has
no signature at all. The allow-list always comes from configuration, never from
the token's own ``alg`` (RFC 8725 §2.1, §3.1).
Ref: https://www.rfc-editor.org/rfc/rfc7518#section-3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

KeyType = Literal["RSA", "EC"]
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class JwsAlgorithm:
    """One ``alg`` value: the key type it needs, its hash, and for ECDSA its curve."""

    name: str
    key_type: KeyType
    hash: type[hashes.HashAlgorithm]
    curve: type[ec.EllipticCurve] | None = None
    pss: bool = False


ALGORITHMS: dict[str, JwsAlgorithm] = {
    "RS256": JwsAlgorithm("RS256", "RSA", hashes.SHA256),
    "RS384": JwsAlgorithm("RS384", "RSA", hashes.SHA384),
    "RS512": JwsAlgorithm("RS512", "RSA", hashes.SHA512),
    "PS256": JwsAlgorithm("PS256", "RSA", hashes.SHA256, pss=True),
    "PS384": JwsAlgorithm("PS384", "RSA", hashes.SHA384, pss=True),
    "PS512": JwsAlgorithm("PS512", "RSA", hashes.SHA512, pss=True),
    # RFC 7518 §3.4 ties each ECDSA alg to one curve: ES256 with a P-384 key is refused.
    "ES256": JwsAlgorithm("ES256", "EC", hashes.SHA256, ec.SECP256R1),
    "ES384": JwsAlgorithm("ES384", "EC", hashes.SHA384, ec.SECP384R1),
    "ES512": JwsAlgorithm("ES512", "EC", hashes.SHA512, ec.SECP521R1),
}
"""Every algorithm this package can verify; configuration picks a subset."""

MIN_RSA_BITS = 2048


def allowed_algorithms(configured: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """Validate a configured allow-list; raise ``ValueError`` for HS*, ``none`` or unknown names.

    A misconfiguration is refused at startup rather than silently narrowed.
    """
    unknown = sorted(set(configured) - ALGORITHMS.keys())
    if unknown:
        raise ValueError(f"algorithms not allowed (asymmetric JWS only): {', '.join(unknown)}")
    return frozenset(configured)


def key_fits(algorithm: JwsAlgorithm, public_key: PublicKey) -> bool:
    """True if ``public_key`` is of the type (and, for ECDSA, the curve) ``algorithm`` needs."""
    if algorithm.key_type == "RSA":
        return isinstance(public_key, rsa.RSAPublicKey)
    return (isinstance(public_key, ec.EllipticCurvePublicKey)
            and algorithm.curve is not None
            and isinstance(public_key.curve, algorithm.curve))


def verify_signature(
    algorithm: JwsAlgorithm, public_key: PublicKey, signing_input: bytes, signature: bytes,
) -> bool:
    """True if ``signature`` is ``algorithm``'s signature of ``signing_input`` by ``public_key``.

    The caller has already checked :func:`key_fits`. Never raises for a bad signature.
    """
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            der = _jws_ecdsa_to_der(signature, public_key.curve)
            public_key.verify(der, signing_input, ec.ECDSA(algorithm.hash()))
        else:
            public_key.verify(signature, signing_input, _rsa_padding(algorithm), algorithm.hash())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _rsa_padding(algorithm: JwsAlgorithm) -> padding.AsymmetricPadding:
    if algorithm.pss:
        # RFC 7518 §3.5: the salt is exactly as long as the hash output.
        digest = algorithm.hash()
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def _jws_ecdsa_to_der(signature: bytes, curve: ec.EllipticCurve) -> bytes:
    # JWS carries ECDSA signatures as fixed-width R || S (RFC 7518 §3.4), not DER.
    size = (curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        raise ValueError("ECDSA signature has the wrong length")
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    return encode_dss_signature(r, s)


__all__ = [
    "ALGORITHMS", "JwsAlgorithm", "KeyType", "MIN_RSA_BITS", "PublicKey",
    "allowed_algorithms", "key_fits", "verify_signature",
]
