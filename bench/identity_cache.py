"""The verified-credential cache: a hit against a cold verification of the same credential.

Both sides run the real ``IdentityVerifier.verify`` on the same credential at
the same time, with live revocations consulted (a store holding 1,000 jti
entries and 10 SPIFFE ID prefixes, as the PDP does on every request). "Cold"
is a verifier whose cache is off (size 0): parse, header checks, key by
``kid``, signature, claims — or, for an X.509-SVID, PEM parsing, the SPIFFE
leaf rules and RFC 5280 path validation. A hit is the SHA-256 of the
credential, an LRU lookup, the time re-check and the revocation check.

``python -m bench.identity_cache`` (or ``python -m bench``) writes its section
of bench/RESULTS.md. Target (issue 3): a hit costs at most 10% of a cold
verification.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench.harness import Comparison, compare, machine, record, table
from context.revocations import InMemoryRevocationStore, new_revocation
from pdp.identity.claims import JwtRules
from pdp.identity.jwk import JwtKey
from pdp.identity.model import BearerToken, Credential, X509Chain
from pdp.identity.oauth_jwt import OAuthIssuer
from pdp.identity.revocation import StoreRevocationCheck
from pdp.identity.trust_bundle import TrustBundle
from pdp.identity.trust_store import TrustStore
from pdp.identity.verifier import IdentityVerifier

TARGET = "≤ 0.10 (issue 3)"
NOW = datetime.now(UTC).replace(microsecond=0)


def _ca(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
        ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer[0].subject if issuer else subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    if issuer is not None:
        cert = cert.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), False)
    return cert.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _x509_svid() -> tuple[str, TrustBundle]:
    root = _ca("example.org root", None)
    mid = _ca("example.org intermediate", root)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "w")]))
            .issuer_name(mid[0].subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(hours=1)).not_valid_after(NOW + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://example.org/services/etl")]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                mid[1].public_key()), False)
            .sign(mid[1], hashes.SHA256()))
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, mid[0])).decode()
    return pem, TrustBundle("example.org", x509_authorities=(root[0],))


def _revocations() -> InMemoryRevocationStore:
    store = InMemoryRevocationStore()
    for i in range(1000):
        store.add(new_revocation("jti", f"revoked-{i}"))
    for i in range(10):
        store.add(new_revocation("spiffe_prefix", f"spiffe://example.org/retired-{i}"))
    return store


def _setup() -> tuple[dict[str, Credential], TrustStore, dict[str, JwtRules]]:
    svid_key = ec.generate_private_key(ec.SECP256R1())
    idp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem, x509_bundle = _x509_svid()
    bundle = TrustBundle("example.org", x509_authorities=x509_bundle.x509_authorities,
                         jwt_keys={"k1": JwtKey("k1", svid_key.public_key(), "EC")})
    rules = JwtRules(audiences=frozenset({"pdp"}))
    issuer = OAuthIssuer(name="idp", issuer="https://idp.example",
                         keys={"i1": JwtKey("i1", idp_key.public_key(), "RSA")}, rules=rules,
                         token_type="at+jwt")
    t = int(NOW.timestamp())
    svid = jwt.encode({"sub": "spiffe://example.org/services/etl", "aud": "pdp", "iat": t - 5,
                       "exp": t + 300, "jti": str(uuid.uuid4())}, svid_key, algorithm="ES256",
                      headers={"kid": "k1", "typ": "JWT"})
    access = jwt.encode({"iss": "https://idp.example", "sub": "billing", "aud": "pdp",
                         "client_id": "billing", "iat": t - 5, "exp": t + 300,
                         "jti": str(uuid.uuid4())}, idp_key, algorithm="RS256",
                        headers={"kid": "i1", "typ": "at+jwt"})
    credentials: dict[str, Credential] = {
        "JWT-SVID (ES256)": BearerToken(svid),
        "X.509-SVID (leaf + intermediate, path validation)": X509Chain(pem),
        "OAuth access token (RS256, at+jwt)": BearerToken(access),
    }
    store = TrustStore(bundles={"example.org": bundle}, issuers=(issuer,))
    return credentials, store, {"example.org": rules}


def run() -> list[Comparison]:
    credentials, store, rules = _setup()
    revocations = StoreRevocationCheck(_revocations())
    cached = IdentityVerifier(store=store, svid_rules=rules, deny_list=revocations)
    cold = IdentityVerifier(store=store, svid_rules=rules, deny_list=revocations, cache_size=0)
    rows = []
    for name, credential in credentials.items():
        assert cached.verify(credential, NOW) == cold.verify(credential, NOW)  # same answer

        def hit(c: Credential = credential) -> object:
            return cached.verify(c, NOW)

        def miss(c: Credential = credential) -> object:
            return cold.verify(c, NOW)

        per_round = 100 if "X.509" in name else 300
        hit_us, cold_us = compare(hit, miss, rounds=9, per_round=per_round, warmup=50)
        rows.append(Comparison(f"{name}: cache hit", hit_us, cold_us, "cold verification",
                               TARGET))
    return rows


def main() -> int:
    print(f"machine: {machine()}")
    text = table(run())
    print(text)
    record("Identity: verified-credential cache", "python -m bench identity", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
