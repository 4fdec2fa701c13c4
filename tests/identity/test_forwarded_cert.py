"""Client certificates forwarded by a trusted proxy (Envoy XFCC, nginx escaped PEM)."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from pdp.identity.errors import MalformedCredential, MissingCredential, UntrustedIssuer
from pdp.identity.forwarded_cert import chain_from_escaped_pem, chain_from_xfcc, parse_xfcc
from pdp.identity.x509_svid import verify_x509_svid

PROXIES = ("10.0.0.0/24", "::1")


def element(xk: Any, leaf: Any, **extra: str) -> str:
    digest = hashlib.sha256(leaf.cert.public_bytes(Encoding.DER)).hexdigest()
    parts = {"By": "spiffe://example.org/pdp", "Hash": digest,
             "Chain": quote(xk.chain_pem(leaf), safe=""),
             "URI": "spiffe://example.org/ns/prod/sa/api", **extra}
    return ";".join(f'{k}="{v}"' if ";" in v or "," in v else f"{k}={v}"
                    for k, v in parts.items() if v)


def test_nearest_element_from_a_trusted_proxy_is_verified_in_full(xk: Any) -> None:
    leaf = xk.leaf()
    header = 'By=spiffe://x;URI=spiffe://example.org/far,' + element(xk, leaf)
    chain = chain_from_xfcc(header, peer="10.0.0.7", trusted_proxies=PROXIES)
    identity = verify_x509_svid(chain.pem, {"example.org": xk.bundle()}, xk.now)
    assert identity.principal_id == "spiffe://example.org/ns/prod/sa/api"


def test_xfcc_from_an_untrusted_peer_is_refused(xk: Any) -> None:
    with pytest.raises(UntrustedIssuer):
        chain_from_xfcc(element(xk, xk.leaf()), peer="192.0.2.1", trusted_proxies=PROXIES)
    with pytest.raises(UntrustedIssuer):
        chain_from_xfcc(element(xk, xk.leaf()), peer="not-an-ip", trusted_proxies=PROXIES)


def test_xfcc_element_with_two_uris_is_refused(xk: Any) -> None:
    header = element(xk, xk.leaf()) + ";URI=spiffe://example.org/other"
    with pytest.raises(MalformedCredential) as e:
        chain_from_xfcc(header, peer="::1", trusted_proxies=PROXIES)
    assert e.value.reason == "xfcc-multiple-uri"


def test_xfcc_hash_must_match_the_leaf(xk: Any) -> None:
    header = element(xk, xk.leaf(), Hash="00" * 32)
    with pytest.raises(MalformedCredential) as e:
        chain_from_xfcc(header, peer="::1", trusted_proxies=PROXIES)
    assert e.value.reason == "xfcc-hash-mismatch"


def test_xfcc_uri_must_be_the_leafs_uri_san(xk: Any) -> None:
    header = element(xk, xk.leaf(), URI="spiffe://example.org/admin")
    with pytest.raises(MalformedCredential) as e:
        chain_from_xfcc(header, peer="::1", trusted_proxies=PROXIES)
    assert e.value.reason == "xfcc-uri-mismatch"


def test_xfcc_without_a_certificate_is_missing(xk: Any) -> None:
    with pytest.raises(MissingCredential):
        chain_from_xfcc("By=spiffe://x;URI=spiffe://example.org/a", peer="::1",
                        trusted_proxies=PROXIES)
    with pytest.raises(MissingCredential):
        chain_from_xfcc("", peer="::1", trusted_proxies=PROXIES)


@pytest.mark.parametrize("header", ['By="unbalanced', "Cert", "=x", 'Hash=a;Hash=b'])
def test_malformed_xfcc_is_refused(header: str) -> None:
    with pytest.raises(MalformedCredential):
        chain_from_xfcc(header, peer="::1", trusted_proxies=PROXIES)


def test_xfcc_quoted_values_may_hold_separators() -> None:
    parsed = parse_xfcc('Subject="CN=a, O=b; c";URI=spiffe://example.org/x,By=y')
    assert parsed == [{"subject": "CN=a, O=b; c", "uri": "spiffe://example.org/x"}, {"by": "y"}]


def test_nginx_escaped_pem_from_a_trusted_proxy(xk: Any) -> None:
    pem = xk.chain_pem(xk.leaf())
    chain = chain_from_escaped_pem(quote(pem), peer="10.0.0.1", trusted_proxies=PROXIES)
    assert chain.pem == pem
    with pytest.raises(UntrustedIssuer):
        chain_from_escaped_pem(quote(pem), peer="10.0.1.1", trusted_proxies=PROXIES)
