"""Plain JWK Sets (RFC 7517 §5): the signing keys of an OAuth/OIDC issuer.

Unlike a SPIFFE bundle, a plain JWKS rarely sets ``use``: every entry with a
``kid`` is a signature key unless ``use`` is ``enc``. Each key must carry a
``kid``, because tokens pick their key by ``kid``; an entry without one makes
the whole set invalid, as go-spiffe's ``jwtbundle.Parse`` does (silently
dropping it would hide a publisher's mistake). Symmetric ``oct`` keys are
ignored: a shared secret never verifies a third party's token.
Ref: https://www.rfc-editor.org/rfc/rfc7517#section-5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pdp.identity.jwk import JwtKey, UnusableJwk, jwt_key_from_jwk
from pdp.identity.strict_json import loads_object
from pdp.identity.trust_bundle import BundleError, IgnoredEntry, read_key_file


@dataclass(frozen=True, slots=True)
class JwkSet:
    """The usable signing keys of a JWKS by ``kid``, and the entries dropped."""

    keys: Mapping[str, JwtKey]
    ignored: tuple[IgnoredEntry, ...] = ()


def parse_jwks(data: bytes | str) -> JwkSet:
    """Parse a plain JWKS or raise :class:`BundleError`."""
    try:
        document = loads_object(data)
    except ValueError as e:
        raise BundleError(f"JWKS is not a JSON object: {e}") from e
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise BundleError("JWKS has no 'keys' array")
    keys: dict[str, JwtKey] = {}
    ignored: list[IgnoredEntry] = []
    for index, entry in enumerate(entries):
        _read_entry(index, entry, keys, ignored)
    return JwkSet(keys=MappingProxyType(keys), ignored=tuple(ignored))


def load_jwks_file(path: Path) -> JwkSet:
    """Read and parse the JWKS file at ``path``; any failure is a :class:`BundleError`."""
    return parse_jwks(read_key_file(path))


def _read_entry(
    index: int, entry: Any, keys: dict[str, JwtKey], ignored: list[IgnoredEntry],
) -> None:
    if not isinstance(entry, dict):
        raise BundleError(f"JWKS entry {index} is not a JSON object")
    if entry.get("use") == "enc":
        ignored.append(IgnoredEntry(index, "encryption key (use 'enc')"))
        return
    if entry.get("kty") == "oct":
        ignored.append(IgnoredEntry(index, "kty 'oct' (shared secret)"))
        return
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        raise BundleError(f"JWKS entry {index} has no kid")
    if kid in keys:
        raise BundleError(f"JWKS has two keys with kid {kid!r}")
    try:
        keys[kid] = jwt_key_from_jwk(entry, kid=kid)
    except UnusableJwk as e:
        # An unsupported kty (e.g. OKP) is common in IdP key sets; skip that key only.
        ignored.append(IgnoredEntry(index, str(e)))


__all__ = ["JwkSet", "load_jwks_file", "parse_jwks"]
