"""Client certificates forwarded by a TLS-terminating proxy.

When Envoy or nginx terminates mTLS, the PDP sees the workload's certificate
only in a header: Envoy's ``x-forwarded-client-cert`` (XFCC), nginx's
``$ssl_client_escaped_cert``. Anyone can send such a header, so it is read
only from configured proxy addresses, and the chain it carries is then
verified in full like a directly presented one (see ``x509_svid.py``): the
proxy's own verdict is not trusted.
Ref: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert

XFCC syntax: elements separated by ``,`` (one per proxy hop, each appended
by the next proxy), each a ``;``-separated list of ``Key=value`` with
case-insensitive keys; a value holding ``,;=`` is double-quoted, with ``\\"``
for a quote. ``Cert`` and ``Chain`` are URL-encoded PEM, ``Hash`` the hex
SHA-256 of the leaf's DER. Example::

    By=spiffe://example.org/pdp;Hash=4a7b...;URI=spiffe://example.org/api;Cert="-----BEGIN%20..."
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Collection
from urllib.parse import unquote

from cryptography.hazmat.primitives.serialization import Encoding

from pdp.identity.errors import MalformedCredential, MissingCredential, UntrustedIssuer
from pdp.identity.model import X509Chain
from pdp.identity.x509_svid import load_pem_chain, uri_sans

MAX_HEADER_BYTES = 65536


def chain_from_xfcc(header: str | None, *, peer: str,
                    trusted_proxies: Collection[str]) -> X509Chain:
    """The client chain of the nearest XFCC element, if ``peer`` is a trusted proxy.

    ``trusted_proxies`` holds addresses or CIDR networks. The nearest element
    is the last one: the hop that terminated the workload's TLS appended it.
    """
    _check_peer(peer, trusted_proxies)
    if not header:
        raise MissingCredential("no x-forwarded-client-cert header")
    if len(header) > MAX_HEADER_BYTES:
        raise MalformedCredential("x-forwarded-client-cert is too large", reason="xfcc-malformed")
    element = parse_xfcc(header)[-1]
    pem = _url_decoded(element.get("chain") or element.get("cert"))
    if pem is None:
        raise MissingCredential("XFCC element has no Cert or Chain")
    _check_element_matches(pem, element)
    return X509Chain(pem=pem)


def chain_from_escaped_pem(
    value: str | None, *, peer: str, trusted_proxies: Collection[str],
) -> X509Chain:
    """nginx ``$ssl_client_escaped_cert`` (URL-encoded PEM), if ``peer`` is a trusted proxy."""
    _check_peer(peer, trusted_proxies)
    pem = _url_decoded(value)
    if pem is None:
        raise MissingCredential("no forwarded client certificate")
    return X509Chain(pem=pem)


def parse_xfcc(header: str) -> list[dict[str, str]]:
    """Split an XFCC header into its elements, each a dict with lowercase keys.

    Refuses unbalanced quotes, a pair without ``=``, a repeated key, and an
    element with more than one ``URI`` (the certificate then names several
    identities, which an X.509-SVID must not).
    """
    elements = []
    for raw_element in _split_unquoted(header, ","):
        element: dict[str, str] = {}
        for pair in _split_unquoted(raw_element, ";"):
            key, value = _key_value(pair)
            if key in element:
                reason = "xfcc-multiple-uri" if key == "uri" else "xfcc-malformed"
                raise MalformedCredential(f"XFCC element repeats {key!r}", reason=reason)
            element[key] = value
        elements.append(element)
    return elements


def is_trusted_peer(peer: str, trusted_proxies: Collection[str]) -> bool:
    """True if the address ``peer`` is in one of ``trusted_proxies`` (addresses or CIDRs)."""
    try:
        address = ipaddress.ip_address(peer)
        return any(address in ipaddress.ip_network(p, strict=False) for p in trusted_proxies)
    except ValueError:
        return False


def _check_peer(peer: str, trusted_proxies: Collection[str]) -> None:
    if not is_trusted_peer(peer, trusted_proxies):
        raise UntrustedIssuer(
            f"forwarded client certificate from {peer!r}, not a trusted proxy",
            reason="untrusted-proxy")


def _split_unquoted(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
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
    if quoted or escaped:
        raise MalformedCredential("XFCC has an unbalanced quote", reason="xfcc-malformed")
    parts.append("".join(current))
    return parts


def _key_value(pair: str) -> tuple[str, str]:
    key, equals, value = pair.strip().partition("=")
    if not equals or not key:
        raise MalformedCredential("XFCC pair without '='", reason="xfcc-malformed")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"')
    return key.lower(), value


def _url_decoded(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as e:
        raise MalformedCredential("forwarded certificate is not URL-encoded UTF-8",
                                  reason="xfcc-malformed") from e


def _check_element_matches(pem: str, element: dict[str, str]) -> None:
    """``Hash`` and ``URI``, when present, must describe the leaf the element carries."""
    if "hash" not in element and "uri" not in element:
        return
    leaf = load_pem_chain(pem)[0]
    if "hash" in element:
        actual = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest().encode("ascii")
        if not hmac.compare_digest(actual, element["hash"].lower().encode("utf-8")):
            raise MalformedCredential("XFCC Hash does not match the certificate",
                                      reason="xfcc-hash-mismatch")
    if "uri" in element:
        if element["uri"] not in uri_sans(leaf):
            raise MalformedCredential("XFCC URI is not the certificate's URI SAN",
                                      reason="xfcc-uri-mismatch")


__all__ = ["chain_from_escaped_pem", "chain_from_xfcc", "is_trusted_peer", "parse_xfcc"]
