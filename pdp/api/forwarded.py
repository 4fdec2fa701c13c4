"""A workload's client certificate as forwarded by a trusted TLS-terminating proxy.

When Envoy or nginx terminates the workload's mTLS, the certificate reaches
the PDP only in a header. Anyone can send such a header, so it is read only
when the TCP peer is one of ``settings.trusted_proxies`` (addresses or CIDRs);
from any other peer the headers are ignored. The chain is returned as an
``X509Chain`` to be verified in full like a directly presented one (the
proxy's own verdict is not trusted):

- Envoy ``x-forwarded-client-cert``: the nearest element (the last), its
  ``Chain`` or ``Cert`` (URL-encoded PEM); ``Hash`` (SHA-256 of the leaf DER)
  and ``URI`` must match the leaf when present; two ``URI`` keys are refused.
- nginx ``ssl-client-escaped-cert`` (``proxy_set_header ssl-client-escaped-cert
  $ssl_client_escaped_cert;``): URL-encoded PEM.
- nginx ``ssl-client-cert`` (``$ssl_client_cert``, deprecated by nginx): PEM
  whose line breaks became spaces or tabs; the base64 is re-wrapped.

Gateway endpoints (Envoy ext_authz, nginx auth_request) call
:func:`forwarded_credential` to learn the subject of a proxied request.
"""

from __future__ import annotations

import re

from fastapi import Request

from pdp.config import Settings
from pdp.identity.errors import MalformedCredential
from pdp.identity.forwarded_cert import chain_from_escaped_pem, chain_from_xfcc, is_trusted_peer
from pdp.identity.model import Credential, X509Chain

XFCC = "x-forwarded-client-cert"
NGINX_ESCAPED = "ssl-client-escaped-cert"
NGINX_PEM = "ssl-client-cert"
MAX_HEADER_BYTES = 65536

_FOLDED_PEM = re.compile(
    r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def forwarded_credential(request: Request, settings: Settings) -> Credential | None:
    """The forwarded client certificate chain, or None.

    None when no proxy is trusted, the peer is not a trusted proxy, or it sent
    no certificate header. A trusted proxy's malformed header (or an XFCC
    ``Hash``/``URI`` that does not match the certificate) raises the
    ``IdentityError`` (``MalformedCredential``), to be answered as a deny.
    """
    peer = request.client.host if request.client else None
    if not settings.trusted_proxies or peer is None:
        return None
    if not is_trusted_peer(peer, settings.trusted_proxies):
        return None
    headers = request.headers
    if XFCC in headers:
        return chain_from_xfcc(headers[XFCC], peer=peer, trusted_proxies=settings.trusted_proxies)
    if NGINX_ESCAPED in headers:
        return chain_from_escaped_pem(headers[NGINX_ESCAPED], peer=peer,
                                      trusted_proxies=settings.trusted_proxies)
    if NGINX_PEM in headers:
        return X509Chain(unfold_pem(headers[NGINX_PEM]))
    return None


def unfold_pem(value: str) -> str:
    """PEM certificates whose line breaks a header turned into spaces or tabs, re-wrapped."""
    if len(value) > MAX_HEADER_BYTES:
        raise MalformedCredential("forwarded certificate header is too large",
                                  reason="xfcc-malformed")
    blocks = _FOLDED_PEM.findall(value)
    if not blocks:
        raise MalformedCredential("ssl-client-cert holds no PEM certificate",
                                  reason="xfcc-malformed")
    out = []
    for body in blocks:
        b64 = re.sub(r"\s+", "", body)
        lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
        out.append("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines)
                   + "\n-----END CERTIFICATE-----\n")
    return "".join(out)


__all__ = ["NGINX_ESCAPED", "NGINX_PEM", "XFCC", "forwarded_credential", "unfold_pem"]
