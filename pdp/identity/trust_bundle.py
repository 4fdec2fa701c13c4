"""SPIFFE trust bundles: the keys that vouch for one trust domain's SVIDs.

A bundle is a JWK Set whose entries say what they are for with ``use``:
``x509-svid`` entries carry a CA certificate in ``x5c[0]`` (an X.509
authority), ``jwt-svid`` entries a public key named by ``kid`` (a JWT
authority). Entries with a missing or unknown ``use`` are ignored, as are
entries that fail validation; the bundle itself is invalid only when it is not
a JSON object with a ``keys`` array (an empty array is valid: every key was
revoked, so every SVID of the domain is refused).
Ref: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md#4-spiffe-bundle-format

Example::

    bundle = load_bundle_file(Path("/etc/pdp/example.org.bundle.json"), "example.org")
    bundle.jwt_keys["C6vs25welZOx6WksNYfbMfiw9l96pMnD"].public_key
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509

from pdp.identity.errors import BadSpiffeId
from pdp.identity.jwk import JwtKey, UnusableJwk, jwt_key_from_jwk
from pdp.identity.spiffe_id import parse_spiffe_id
from pdp.identity.strict_json import loads_object

DEFAULT_REFRESH_S = 300
"""Refresh interval when the bundle has no ``spiffe_refresh_hint`` (spec: "about 5 minutes")."""

MAX_BUNDLE_BYTES = 1 << 20


class BundleError(ValueError):
    """The document is not a usable SPIFFE bundle (or JWK Set); fail closed.

    ``reason`` is ``"bundle-invalid"``, the reason string of the test vectors.
    """

    reason = "bundle-invalid"


@dataclass(frozen=True, slots=True)
class IgnoredEntry:
    """A ``keys`` entry (or part of one) the parser dropped, and why."""

    index: int
    why: str


@dataclass(frozen=True, slots=True)
class TrustBundle:
    """The X.509 and JWT authorities of one trust domain.

    ``sequence`` and ``refresh_hint`` are as the document carries them (``None``
    when absent); :attr:`refresh_interval_s` applies the default.
    """

    trust_domain: str
    x509_authorities: tuple[x509.Certificate, ...] = ()
    jwt_keys: Mapping[str, JwtKey] = field(default_factory=lambda: MappingProxyType({}))
    sequence: int | None = None
    refresh_hint: int | None = None
    ignored: tuple[IgnoredEntry, ...] = ()

    @property
    def refresh_interval_s(self) -> int:
        """Seconds until the bundle should be fetched again."""
        return self.refresh_hint if self.refresh_hint is not None else DEFAULT_REFRESH_S

    def with_jwt_keys(self, extra: Mapping[str, JwtKey]) -> TrustBundle:
        """This bundle with ``extra`` JWT authorities added (e.g. the dev issuer's key)."""
        return replace(self, jwt_keys=MappingProxyType({**self.jwt_keys, **extra}))


def parse_spiffe_bundle(data: bytes | str, trust_domain: str) -> TrustBundle:
    """Parse a SPIFFE bundle for ``trust_domain`` or raise :class:`BundleError`."""
    _check_trust_domain(trust_domain)
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError("bundle is too large")
    try:
        document = loads_object(data)
    except ValueError as e:
        raise BundleError(f"bundle is not a JSON object: {e}") from e
    entries = _keys_array(document)
    authorities: list[x509.Certificate] = []
    jwt_keys: dict[str, JwtKey] = {}
    ignored: list[IgnoredEntry] = []
    for index, entry in enumerate(entries):
        _read_entry(index, entry, authorities, jwt_keys, ignored)
    return TrustBundle(
        trust_domain=trust_domain,
        x509_authorities=tuple(authorities),
        jwt_keys=MappingProxyType(jwt_keys),
        sequence=_optional_count(document, "spiffe_sequence"),
        refresh_hint=_optional_count(document, "spiffe_refresh_hint"),
        ignored=tuple(ignored),
    )


def load_bundle_file(path: Path, trust_domain: str) -> TrustBundle:
    """Read and parse the bundle file at ``path``; any failure is a :class:`BundleError`."""
    return parse_spiffe_bundle(read_key_file(path), trust_domain)


def check_successor(current: TrustBundle | None, new: TrustBundle) -> None:
    """Refuse an update whose ``spiffe_sequence`` is lower than the current one.

    The sequence must grow with each update; a lower one is a stale or replayed
    bundle that could bring back revoked keys.
    """
    if current is None or current.sequence is None or new.sequence is None:
        return
    if new.sequence < current.sequence:
        raise BundleError(
            f"bundle sequence went back from {current.sequence} to {new.sequence}")


def read_key_file(path: Path) -> bytes:
    """Read a bundle or JWKS file, bounded in size; raise :class:`BundleError`."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as e:
        raise BundleError(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"{path} is too large")
    return data


def _check_trust_domain(trust_domain: str) -> None:
    try:
        spiffe_id = parse_spiffe_id(f"spiffe://{trust_domain}")
    except BadSpiffeId as e:
        raise BundleError(f"not a trust domain name: {trust_domain!r}") from e
    if not spiffe_id.is_root:
        raise BundleError(f"not a trust domain name: {trust_domain!r}")


def _keys_array(document: dict[str, Any]) -> list[Any]:
    if "keys" not in document:
        raise BundleError("bundle has no 'keys' member")
    keys = document["keys"]
    if not isinstance(keys, list):
        raise BundleError("'keys' is not an array")
    return keys


def _optional_count(document: dict[str, Any], name: str) -> int | None:
    value = document.get(name)
    if value is None:
        return None
    # bool is an int in Python; true is not a sequence number.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BundleError(f"{name!r} must be a non-negative integer")
    return value


def _read_entry(
    index: int, entry: Any, authorities: list[x509.Certificate],
    jwt_keys: dict[str, JwtKey], ignored: list[IgnoredEntry],
) -> None:
    if not isinstance(entry, dict):
        ignored.append(IgnoredEntry(index, "entry is not a JSON object"))
        return
    use = entry.get("use")
    if use == "x509-svid":
        _read_x509_entry(index, entry, authorities, ignored)
    elif use == "jwt-svid":
        _read_jwt_entry(index, entry, jwt_keys, ignored)
    elif use is None:
        ignored.append(IgnoredEntry(index, "missing use"))
    else:
        ignored.append(IgnoredEntry(index, f"unknown use {use!r}"))


def _read_x509_entry(
    index: int, entry: dict[str, Any], authorities: list[x509.Certificate],
    ignored: list[IgnoredEntry],
) -> None:
    x5c = entry.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        ignored.append(IgnoredEntry(index, "x509-svid entry without x5c"))
        return
    try:
        authorities.append(_certificate_from_x5c(x5c[0]))
    except ValueError as e:
        ignored.append(IgnoredEntry(index, f"x5c[0] is not a certificate: {e}"))
        return
    if len(x5c) > 1:
        # X509-SVID spec 6.2: all but the first certificate MUST be ignored.
        ignored.append(IgnoredEntry(index, "x5c[1:] ignored: only x5c[0] is the authority"))


def _certificate_from_x5c(value: Any) -> x509.Certificate:
    if not isinstance(value, str):
        raise ValueError("x5c member is not a string")
    try:
        # x5c is standard base64 (with padding), not base64url (RFC 7517 §4.7).
        der = base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise ValueError("x5c member is not base64") from e
    return x509.load_der_x509_certificate(der)


def _read_jwt_entry(
    index: int, entry: dict[str, Any], jwt_keys: dict[str, JwtKey], ignored: list[IgnoredEntry],
) -> None:
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        # JWT-SVID spec 6.1: kid MUST be set; the entry is unusable (go-spiffe
        # rejects the whole bundle, which is stricter and also fail-closed).
        ignored.append(IgnoredEntry(index, "jwt-svid entry without kid"))
        return
    try:
        key = jwt_key_from_jwk(entry, kid=kid)
    except UnusableJwk as e:
        ignored.append(IgnoredEntry(index, str(e)))
        return
    if kid in jwt_keys:
        # Two keys with one kid: which one signs is ambiguous, so trust neither set.
        raise BundleError(f"duplicate jwt-svid kid {kid!r}")
    jwt_keys[kid] = key


__all__ = [
    "BundleError", "DEFAULT_REFRESH_S", "IgnoredEntry", "TrustBundle", "check_successor",
    "load_bundle_file", "parse_spiffe_bundle", "read_key_file",
]
