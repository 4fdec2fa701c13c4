"""SPIFFE IDs: ``spiffe://<trust-domain><path>``, parsed strictly.

A SPIFFE ID names a workload. The trust domain says who vouches for it (whose
bundle holds the keys), the path names the workload inside that domain.
Ref: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md

The profile is the strict one of ``testdata/spiffe/ids.json``: exact lowercase
scheme, trust domain ``[a-z0-9._-]{1,255}``, path segments ``[a-zA-Z0-9._-]+``
other than ``.``/``..``, no trailing ``/``, at most 2048 bytes, ASCII only.
No query, fragment, userinfo, port or percent-encoding: they all fall outside
the character classes. IDs compare byte for byte; nothing is lowercased.

Example::

    >>> parse_spiffe_id("spiffe://example.org/ns/prod/sa/api")
    SpiffeId(trust_domain='example.org', path='/ns/prod/sa/api')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

from pdp.identity.errors import BadSpiffeId

SCHEME_PREFIX = "spiffe://"
MAX_ID_BYTES = 2048
MAX_TRUST_DOMAIN_BYTES = 255

# Explicit ASCII classes with fullmatch: never \w or \d (they match Unicode digits
# and letters), never IGNORECASE (KELVIN SIGN matches "k"), never "$" (it matches
# before a trailing newline).
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[a-zA-Z0-9._-]+")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A parsed SPIFFE ID. ``path`` is ``""`` or starts with ``/``."""

    trust_domain: str
    path: str

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain}{self.path}"

    @property
    def is_root(self) -> bool:
        """True for the trust domain's own ID (no path): never a workload."""
        return self.path == ""


def parse_spiffe_id(value: str) -> SpiffeId:
    """Parse ``value`` as a SPIFFE ID or raise :class:`BadSpiffeId`.

    The error's ``reason`` names the first rule broken: ``empty``,
    ``id-too-long``, ``non-ascii``, ``bad-scheme``, ``missing-trust-domain``,
    ``bad-trust-domain-char``, ``trust-domain-too-long``, ``empty-segment``,
    ``trailing-slash``, ``dot-segment`` or ``bad-path-char``.
    """
    if not isinstance(value, str):
        raise BadSpiffeId("a SPIFFE ID must be a string", reason="not-a-string")
    _check_whole(value)
    rest = value[len(SCHEME_PREFIX):]
    trust_domain, slash, path = rest.partition("/")
    _check_trust_domain(trust_domain)
    if slash:
        _check_path(slash + path)
    return SpiffeId(trust_domain, slash + path)


def is_spiffe_id(value: object) -> bool:
    """True if ``value`` is a string that parses as a SPIFFE ID."""
    if not isinstance(value, str):
        return False
    try:
        parse_spiffe_id(value)
    except BadSpiffeId:
        return False
    return True


def looks_like_spiffe_id(value: object) -> TypeGuard[str]:
    """True if ``value`` claims to be a SPIFFE ID (scheme ``spiffe:``, any case).

    Such a value must then parse strictly: a mis-cased or malformed SPIFFE ID is
    refused, never treated as an opaque name.
    """
    return isinstance(value, str) and value[:7].lower() == "spiffe:"


def _check_whole(value: str) -> None:
    if value == "":
        raise BadSpiffeId("empty SPIFFE ID", reason="empty")
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise BadSpiffeId(f"SPIFFE ID longer than {MAX_ID_BYTES} bytes", reason="id-too-long")
    if not value.isascii():
        raise BadSpiffeId("SPIFFE ID is not ASCII", reason="non-ascii")
    if not value.startswith(SCHEME_PREFIX):
        raise BadSpiffeId("SPIFFE ID must start with 'spiffe://'", reason="bad-scheme")


def _check_trust_domain(trust_domain: str) -> None:
    if trust_domain == "":
        raise BadSpiffeId("SPIFFE ID has no trust domain", reason="missing-trust-domain")
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise BadSpiffeId(
            "trust domain may hold only a-z 0-9 . - _", reason="bad-trust-domain-char")
    if len(trust_domain) > MAX_TRUST_DOMAIN_BYTES:
        raise BadSpiffeId(
            f"trust domain longer than {MAX_TRUST_DOMAIN_BYTES} bytes",
            reason="trust-domain-too-long")


def _check_path(path: str) -> None:
    segments = path[1:].split("/")
    for index, segment in enumerate(segments):
        if segment == "":
            last = index == len(segments) - 1
            raise BadSpiffeId(
                "SPIFFE ID path ends with '/'" if last else "SPIFFE ID path has an empty segment",
                reason="trailing-slash" if last else "empty-segment")
        if segment in (".", ".."):
            raise BadSpiffeId("'.' and '..' path segments are not allowed", reason="dot-segment")
        if not _SEGMENT.fullmatch(segment):
            raise BadSpiffeId(
                "SPIFFE ID path may hold only a-z A-Z 0-9 . - _", reason="bad-path-char")


__all__ = ["SpiffeId", "is_spiffe_id", "looks_like_spiffe_id", "parse_spiffe_id"]
