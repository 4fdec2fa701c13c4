"""Fixtures for the identity tests: fixed keys, a fixed clock, token and certificate mints.

Everything is built in-process: EC keys are derived from fixed scalars (the
same keys every run), the RSA key is generated once per session, and the
clock is ``NOW``, passed to every verifier. Hostile tokens are assembled by
hand (``TokenKit.jws``) because pyjwt refuses to produce most of them.
Tests reach everything through the ``tk`` and ``xk`` fixtures (never
``import conftest``: another package's conftest may share the name).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pdp.identity.claims import JwtRules
from pdp.identity.jwk import JwtKey
from pdp.identity.oauth_jwt import OAuthIssuer
from pdp.identity.trust_bundle import TrustBundle
from pdp.identity.trust_store import TrustStore
from pdp.identity.verifier import IdentityVerifier
from tests.conftest import SHARED_TESTDATA

REPO = Path(__file__).resolve().parents[2]
SPIFFE_TESTDATA = SHARED_TESTDATA / "spiffe"

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())
DROP = object()
"""Claim/header value meaning "leave this member out"."""

SVID_KID = "svid-ec-1"
SVID_RSA_KID = "svid-rsa-1"
SVID_P384_KID = "svid-p384-1"
OTHER_KID = "other-ec-1"
IDP_KID = "idp-rsa-1"
IDP = "https://idp.example.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _signing_alg(header: dict[str, Any], default: str) -> str:
    alg = header.get("alg")
    return alg if isinstance(alg, str) and alg in jwt.algorithms.get_default_algorithms() else default


def _merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    merged = {**base, **(overrides or {})}
    return {k: v for k, v in merged.items() if v is not DROP}


@dataclass
class TokenKit:
    """Keys, trust anchors and token mints shared by the JWT tests."""

    ec256: ec.EllipticCurvePrivateKey
    ec384: ec.EllipticCurvePrivateKey
    other: ec.EllipticCurvePrivateKey
    rsa_key: rsa.RSAPrivateKey
    idp_key: rsa.RSAPrivateKey
    now: datetime = NOW
    t: int = T
    # Constants, reachable from tests without importing conftest.
    DROP = DROP
    SVID_KID = SVID_KID
    SVID_RSA_KID = SVID_RSA_KID
    SVID_P384_KID = SVID_P384_KID
    OTHER_KID = OTHER_KID
    IDP_KID = IDP_KID
    IDP = IDP
    b64url = staticmethod(b64url)

    # -- raw JWS -----------------------------------------------------------------
    def jws(self, header: dict[str, Any], payload: dict[str, Any] | str,
            key: Any = None, alg: str | None = None) -> str:
        """A compact JWS with exactly ``header``, signed by ``key`` with ``alg``."""
        body = payload if isinstance(payload, str) else b64json(payload)
        signing_input = f"{b64json(header)}.{body}"
        signature = b""
        if key is not None:
            algorithm = jwt.algorithms.get_default_algorithms()[alg or header["alg"]]
            signature = algorithm.sign(signing_input.encode(), key)
        return f"{signing_input}.{b64url(signature)}"

    # -- JWT-SVIDs ---------------------------------------------------------------
    def svid_claims(self, **overrides: Any) -> dict[str, Any]:
        return _merge({
            "sub": "spiffe://example.org/ns/prod/sa/api",
            "aud": "pdp",
            "iat": self.t - 10,
            "exp": self.t + 290,
            "jti": "jti-1",
        }, overrides)

    def svid(self, claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None,
             key: Any = None, alg: str | None = None) -> str:
        """A JWT-SVID signed by the example.org EC key unless told otherwise."""
        head = _merge({"alg": "ES256", "kid": SVID_KID, "typ": "JWT"}, header)
        return self.jws(head, _merge(self.svid_claims(), claims), key or self.ec256,
                        alg or _signing_alg(head, "ES256"))

    # -- OAuth access tokens -----------------------------------------------------
    def access_claims(self, **overrides: Any) -> dict[str, Any]:
        return _merge({
            "iss": IDP,
            "sub": "user-42",
            "aud": "pdp",
            "client_id": "billing-app",
            "iat": self.t - 10,
            "exp": self.t + 290,
            "jti": "at-1",
            "scope": "invoices:read invoices:write",
        }, overrides)

    def access_token(self, claims: dict[str, Any] | None = None,
                     header: dict[str, Any] | None = None, key: Any = None,
                     alg: str | None = None) -> str:
        """An RFC 9068 access token of the IdP, signed by its RSA key unless told otherwise."""
        head = _merge({"alg": "RS256", "kid": IDP_KID, "typ": "at+jwt"}, header)
        return self.jws(head, _merge(self.access_claims(), claims), key or self.idp_key,
                        alg or _signing_alg(head, "RS256"))

    # -- trust anchors -----------------------------------------------------------
    def bundles(self) -> dict[str, TrustBundle]:
        def key(kid: str, private: Any, kty: str) -> JwtKey:
            return JwtKey(kid=kid, public_key=private.public_key(), key_type=kty)  # type: ignore[arg-type]
        example = TrustBundle("example.org", jwt_keys={
            SVID_KID: key(SVID_KID, self.ec256, "EC"),
            SVID_RSA_KID: key(SVID_RSA_KID, self.rsa_key, "RSA"),
            SVID_P384_KID: key(SVID_P384_KID, self.ec384, "EC"),
        })
        other = TrustBundle("other.org", jwt_keys={OTHER_KID: key(OTHER_KID, self.other, "EC")})
        return {"example.org": example, "other.org": other}

    def rules(self, **overrides: Any) -> JwtRules:
        return JwtRules(**{"audiences": frozenset({"pdp"}), **overrides})

    def idp(self, **overrides: Any) -> OAuthIssuer:
        rules = overrides.pop("rules", self.rules())
        keys = {IDP_KID: JwtKey(IDP_KID, self.idp_key.public_key(), "RSA")}
        return OAuthIssuer(**{"name": "corp-idp", "issuer": IDP, "keys": keys, "rules": rules,
                              "token_type": "at+jwt", **overrides})

    def verifier(self, *, svid_rules: JwtRules | None = None,
                 issuers: Iterable[OAuthIssuer] | None = None, **kwargs: Any) -> IdentityVerifier:
        """A verifier trusting example.org and other.org (JWT-SVIDs) and the IdP."""
        rules = svid_rules or self.rules()
        store = TrustStore(bundles=self.bundles(),
                           issuers=tuple(issuers) if issuers is not None else (self.idp(),))
        return IdentityVerifier(store=store, svid_rules={"example.org": rules, "other.org": rules},
                                **kwargs)


@pytest.fixture(scope="session")
def tk() -> TokenKit:
    return TokenKit(
        ec256=ec.derive_private_key(0x5EED_0001, ec.SECP256R1()),
        ec384=ec.derive_private_key(0x5EED_0002, ec.SECP384R1()),
        other=ec.derive_private_key(0x5EED_0003, ec.SECP256R1()),
        rsa_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        idp_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


# -- X.509 --------------------------------------------------------------------------

@dataclass
class Cert:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding
        return self.cert.public_bytes(Encoding.PEM).decode()


@dataclass
class LeafSpec:
    """What to put in a minted leaf; the defaults make a valid X.509-SVID."""

    uris: tuple[str, ...] = ("spiffe://example.org/ns/prod/sa/api",)
    ca: bool = False
    digital_signature: bool = True
    key_cert_sign: bool = False
    crl_sign: bool = False
    key_usage: bool = True
    eku: tuple[x509.ObjectIdentifier, ...] | None = (
        ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH)
    not_before: datetime = NOW - timedelta(hours=1)
    not_after: datetime = NOW + timedelta(hours=1)
    serial: int = 0x1001
    san_critical: bool = False
    extra: list[Any] = field(default_factory=list)


class X509Kit:
    """A root CA and an intermediate per trust domain, and leaves made to order."""

    Spec = LeafSpec
    now = NOW

    def __init__(self) -> None:
        self._keys = iter(range(0xCA_0001, 0xCA_1000))
        self.roots: dict[str, Cert] = {}
        self.intermediates: dict[str, Cert] = {}
        for td in ("example.org", "other.org"):
            self.roots[td] = self.ca(td, issuer=None)
            self.intermediates[td] = self.ca(td, issuer=self.roots[td], name=f"{td} intermediate")

    def key(self) -> ec.EllipticCurvePrivateKey:
        return ec.derive_private_key(next(self._keys), ec.SECP256R1())

    def ca(self, td: str, *, issuer: Cert | None, name: str | None = None,
           ca: bool = True, key_cert_sign: bool = True) -> Cert:
        key = self.key()
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name or f"{td} root")])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(next(self._keys))
            .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_key_usage(key_cert_sign=key_cert_sign, crl_sign=True), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{td}")]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False)
        signer = issuer.key if issuer else key
        return Cert(builder.sign(signer, hashes.SHA256()), key)

    def leaf(self, spec: LeafSpec | None = None, *, td: str = "example.org",
             issuer: Cert | None = None) -> Cert:
        spec = spec or LeafSpec()
        issuer = issuer or self.intermediates[td]
        key = self.key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "workload")]))
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(spec.serial)
            .not_valid_before(spec.not_before)
            .not_valid_after(spec.not_after)
            .add_extension(x509.BasicConstraints(ca=spec.ca, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.key.public_key()), critical=False)
        )
        if spec.uris:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(u) for u in spec.uris]), critical=spec.san_critical)
        if spec.key_usage:
            builder = builder.add_extension(_key_usage(
                digital_signature=spec.digital_signature, key_cert_sign=spec.key_cert_sign,
                crl_sign=spec.crl_sign), critical=True)
        if spec.eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.eku)), critical=False)
        for extension in spec.extra:
            builder = builder.add_extension(extension, critical=False)
        return Cert(builder.sign(issuer.key, hashes.SHA256()), key)

    def bundle(self, td: str = "example.org") -> TrustBundle:
        return TrustBundle(td, x509_authorities=(self.roots[td].cert,))

    def chain_pem(self, leaf: Cert, td: str = "example.org", *extra: Cert) -> str:
        return leaf.pem + self.intermediates[td].pem + "".join(c.pem for c in extra)


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
        crl_sign=crl_sign, encipher_only=False, decipher_only=False)


@pytest.fixture(scope="session")
def xk() -> X509Kit:
    return X509Kit()
