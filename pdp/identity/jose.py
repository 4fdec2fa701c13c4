"""The JOSE layer shared by JWT-SVIDs and OAuth JWTs: parse, header, key, signature.

A JWT arrives in the JWS compact serialization, ``BASE64URL(header) "."
BASE64URL(payload) "." BASE64URL(signature)`` (RFC 7515 §7.1). Each step here
raises one :mod:`pdp.identity.errors` class, so a verifier reads as a recipe::

    jws = parse_compact_jws(token)             # MalformedCredential
    check_header_members(jws.header)           # ForbiddenHeader
    check_jwt_typ(jws.header)                  # WrongTokenType
    algorithm = select_algorithm(jws.header, allowed)   # DisallowedAlgorithm
    key = select_key(jws.header, keys)         # UnknownKey
    check_signature(jws, algorithm, key)       # BadSignature

Only ``alg``, ``kid`` and ``typ`` may appear in the header. pyjwt silently
ignores ``jku``/``x5u``/``jwk``/``x5c`` (URLs or keys chosen by the sender),
so we reject them (and ``crit``, ``b64``, ``cty``, ``zip``) ourselves.
Ref: https://www.rfc-editor.org/rfc/rfc8725#section-3.10
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pdp.identity.algorithms import ALGORITHMS, JwsAlgorithm, verify_signature
from pdp.identity.errors import (
    BadSignature,
    DisallowedAlgorithm,
    ForbiddenHeader,
    MalformedCredential,
    UnknownKey,
    WrongTokenType,
)
from pdp.identity.jwk import JwtKey
from pdp.identity.strict_json import loads_object

MAX_TOKEN_BYTES = 32768
ALLOWED_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
SVID_TYPES = frozenset({"JWT", "JOSE"})
"""JWT-SVID spec §2.3: ``typ``, when present, is ``JWT`` or ``JOSE``."""
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
"""RFC 9068 §2.1: ``at+jwt``; media types compare case-insensitively."""

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A JWS split into its parts. Nothing in it is trusted until the signature checks."""

    raw: str
    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the token as presented: names it in logs without revealing it."""
        return hashlib.sha256(self.raw.encode("ascii")).hexdigest()


def parse_compact_jws(token: str) -> CompactJws:
    """Split and decode a compact JWS whose header and payload are JSON objects.

    Strict: exactly three segments (header and payload non-empty) of canonical
    unpadded base64url, no whitespace, no duplicate JSON members. A
    non-canonical encoding (unused low bits set in the last character) is
    refused so that one signature has exactly one spelling.
    """
    if not isinstance(token, str) or not token:
        raise MalformedCredential("token must be a non-empty string")
    if len(token) > MAX_TOKEN_BYTES:
        raise MalformedCredential(f"token longer than {MAX_TOKEN_BYTES} bytes")
    segments = token.split(".")
    if len(segments) != 3:
        # Five segments would be a JWE; JSON serialization has no dots at all.
        raise MalformedCredential("not a JWS compact serialization (need 3 segments)")
    header_b64, payload_b64, signature_b64 = segments
    header = _decode_json_segment(header_b64, "header")
    payload = _decode_json_segment(payload_b64, "payload")
    # An empty signature (an Unsecured JWS, alg "none") parses, so that it is
    # refused as a disallowed algorithm rather than as garbage.
    signature = _b64url_decode(signature_b64, "signature") if signature_b64 else b""
    return CompactJws(
        raw=token,
        header=header,
        payload=payload,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
    )


def check_header_members(header: Mapping[str, Any]) -> None:
    """Refuse any header member other than ``alg``, ``kid`` and ``typ``."""
    extra = sorted(set(header) - ALLOWED_HEADER_MEMBERS)
    if extra:
        raise ForbiddenHeader(f"header member(s) not allowed: {', '.join(extra)}")


def check_jwt_typ(header: Mapping[str, Any]) -> None:
    """A JWT-SVID's (or plain JWT's) ``typ`` is absent, ``JWT`` or ``JOSE``, never ``at+jwt``."""
    typ = header.get("typ")
    if typ is not None and not (isinstance(typ, str) and typ in SVID_TYPES):
        raise WrongTokenType(f"typ {typ!r} is not a JWT-SVID type (JWT or JOSE)")


def is_access_token_typ(typ: object) -> bool:
    """True for the RFC 9068 ``typ`` of an access token (``at+jwt``, any case)."""
    return isinstance(typ, str) and typ.lower() in ACCESS_TOKEN_TYPES


def check_access_token_typ(header: Mapping[str, Any]) -> None:
    """RFC 9068 §4: an access token's ``typ`` MUST be ``at+jwt``: nothing else passes."""
    if not is_access_token_typ(header.get("typ")):
        raise WrongTokenType(f"typ {header.get('typ')!r} is not at+jwt")


def select_algorithm(header: Mapping[str, Any], allowed: frozenset[str]) -> JwsAlgorithm:
    """The header's ``alg``, if the configured allow-list has it.

    ``allowed`` comes from configuration; the token's ``alg`` only selects
    within it. ``none`` and ``HS*`` are never in it (see ``algorithms.py``).
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed or alg not in ALGORITHMS:
        raise DisallowedAlgorithm(f"alg {alg!r} is not allowed")
    return ALGORITHMS[alg]


def select_key(header: Mapping[str, Any], keys: Mapping[str, JwtKey]) -> JwtKey:
    """The trusted key named by the header's ``kid``.

    ``keys`` are the authorities of the one issuer or trust domain the token
    claims: a ``kid`` of another domain's bundle is unknown here.
    """
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise UnknownKey("token has no kid")
    key = keys.get(kid)
    if key is None:
        raise UnknownKey(f"no trusted key with kid {kid!r}")
    return key


def check_signature(jws: CompactJws, algorithm: JwsAlgorithm, key: JwtKey) -> None:
    """Verify the signature with ``key`` under ``algorithm``.

    The key must fit the algorithm (an RSA key never verifies an ``ES256``
    token, a P-384 key never an ``ES256`` one) so that the sender's ``alg``
    cannot change how a key is used.
    """
    if not key.accepts(algorithm.name):
        raise DisallowedAlgorithm(f"alg {algorithm.name} does not fit key {key.kid!r}")
    if not verify_signature(algorithm, key.public_key, jws.signing_input, jws.signature):
        raise BadSignature("signature does not verify")


def _decode_json_segment(segment: str, name: str) -> dict[str, Any]:
    data = _b64url_decode(segment, name)
    try:
        return loads_object(data)
    except ValueError as e:
        raise MalformedCredential(f"{name} is not a JSON object: {e}") from e


def _b64url_decode(segment: str, name: str) -> bytes:
    if not segment or not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise MalformedCredential(f"{name} is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as e:
        raise MalformedCredential(f"{name} is not base64url") from e
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
        raise MalformedCredential(f"{name} is not canonical base64url")
    return data


__all__ = [
    "ACCESS_TOKEN_TYPES", "ALLOWED_HEADER_MEMBERS", "CompactJws", "MAX_TOKEN_BYTES",
    "SVID_TYPES", "check_access_token_typ", "check_header_members", "check_signature",
    "check_jwt_typ", "is_access_token_typ", "parse_compact_jws", "select_algorithm",
    "select_key",
]
