"""The caller's credential, taken from an incoming HTTP request.

1. ``Authorization: Bearer <JWT>`` — a JWT-SVID or an issuer's access token.
2. A client certificate forwarded by a TLS-terminating proxy: Envoy's
   ``x-forwarded-client-cert`` (XFCC), or nginx's ``ssl-client-escaped-cert``
   (``$ssl_client_escaped_cert``) or ``ssl-client-cert`` (``$ssl_client_cert``).
   Anyone can send such a header, so it is read
   **only when the TCP peer is one of ``trusted_proxies``**; the PDP then
   verifies the chain in full like a directly presented X.509-SVID.
   Ref: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert

These are pure functions of the headers and the peer address, so the FastAPI
dependency and the ASGI middleware share them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from urllib.parse import unquote

_FOLDED_PEM = re.compile(
    r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def bearer_token(authorization: str | None) -> str | None:
    """``Bearer abc`` -> ``abc`` (case-insensitive scheme); anything else -> None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def is_trusted(peer: str | None, trusted_proxies: Sequence[str]) -> bool:
    """``peer`` (an IP address) is in one of ``trusted_proxies`` (addresses or CIDRs)."""
    if not peer or not trusted_proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
        return any(address in ipaddress.ip_network(p, strict=False) for p in trusted_proxies)
    except ValueError:
        return False


def xfcc_pem(header: str) -> str | None:
    """The PEM of the nearest (last) XFCC element's ``Chain`` or ``Cert``, URL-decoded."""
    elements = _split(header, ",")
    if not elements:
        return None
    fields: dict[str, str] = {}
    for pair in _split(elements[-1], ";"):
        key, eq, value = pair.strip().partition("=")
        if not eq:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        fields[key.lower()] = value
    raw = fields.get("chain") or fields.get("cert")
    return unquote(raw) if raw else None


def credential_from_headers(headers: Mapping[str, str], peer: str | None,
                            trusted_proxies: Sequence[str]) -> dict[str, str] | None:
    """``{"token": ...}``, ``{"x509": ...}`` or None. Header names must be lowercase."""
    token = bearer_token(headers.get("authorization"))
    if token:
        return {"token": token}
    if not is_trusted(peer, trusted_proxies):
        return None
    xfcc = headers.get("x-forwarded-client-cert")
    if xfcc:
        pem = xfcc_pem(xfcc)
        return {"x509": pem} if pem else None
    escaped = headers.get("ssl-client-escaped-cert")
    if escaped:
        return {"x509": unquote(escaped)}
    folded = headers.get("ssl-client-cert")
    if folded:
        return {"x509": unfold_pem(folded)}
    return None


def unfold_pem(value: str) -> str:
    """PEM whose line breaks a header turned into spaces (nginx ``$ssl_client_cert``),
    re-wrapped."""
    out = []
    for body in _FOLDED_PEM.findall(value):
        b64 = re.sub(r"\s+", "", body)
        out.append("-----BEGIN CERTIFICATE-----\n"
                   + "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
                   + "\n-----END CERTIFICATE-----\n")
    return "".join(out) or value


def _split(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted, escaped = False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


__all__ = ["bearer_token", "credential_from_headers", "is_trusted", "unfold_pem", "xfcc_pem"]
