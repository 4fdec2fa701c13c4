"""A small SPIFFE world for the integration tests: CAs, SVIDs, bundles, a wired PDP.

Unlike ``conftest.py`` (fixed keys, a frozen clock, for the verifier's unit
tests), everything here is valid *now*, because it is checked by real servers
and the real app: a trust domain with an X.509 root and intermediate and a
JWT-SVID signing key, its SPIFFE bundle on disk, and Settings for a PDP
trusting it.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm

from pdp.config import Settings, TrustDomainConfig, load_settings

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=sign, crl_sign=sign,
        encipher_only=False, decipher_only=False)


@dataclass
class Issued:
    """A certificate, its key, and the chain to present (leaf first, intermediates)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain_pem: str

    @property
    def serial_hex(self) -> str:
        return format(self.cert.serial_number, "x")

    @property
    def issuer_dn(self) -> str:
        return self.cert.issuer.rfc4514_string()

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """``<name>.pem`` (the chain) and ``<name>.key``; returns both paths."""
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_text(self.chain_pem)
        key_path.write_bytes(self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return cert_path, key_path


@dataclass
class TrustDomain:
    """One SPIFFE trust domain: an X.509 root and intermediate, and a JWT-SVID key."""

    name: str
    root: Issued = field(init=False)
    intermediate: Issued = field(init=False)
    jwt_key: ec.EllipticCurvePrivateKey = field(init=False)
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        self.root = self._ca(f"{self.name} root", None)
        self.intermediate = self._ca(f"{self.name} intermediate", self.root)
        self.jwt_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = f"{self.name}-jwt-{uuid.uuid4().hex[:8]}"

    # -- X.509 -------------------------------------------------------------------
    def _ca(self, cn: str, issuer: Issued | None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, cn)])
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer.cert.subject if issuer else subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(sign=True), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{self.name}")]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False))
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False)
        cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
        return Issued(cert, key, _pem(cert))

    def svid(self, path: str, *, serial: int | None = None,
             not_after: datetime | None = None, server_ip: str | None = None) -> Issued:
        """An X.509-SVID for ``spiffe://<td><path>`` (with a 127.0.0.1 SAN for servers)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(f"spiffe://{self.name}{path}")]
        if server_ip:
            names.append(x509.IPAddress(ipaddress.ip_address(server_ip)))
        issuer = self.intermediate
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "workload")]))
            .issuer_name(issuer.cert.subject).public_key(key.public_key())
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(not_after or now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.key.public_key()), critical=False)
            .sign(issuer.key, hashes.SHA256()))
        return Issued(cert, key, _pem(cert) + issuer.chain_pem)

    # -- JWT-SVIDs ---------------------------------------------------------------
    def jwt_svid(self, path: str, *, audience: str | list[str] = "pdp", ttl_s: int = 300,
                 age_s: int = 5, **claims: Any) -> str:
        """A JWT-SVID for ``spiffe://<td><path>`` signed by this domain's key."""
        now = int(datetime.now(UTC).timestamp())
        payload: dict[str, Any] = {
            "sub": f"spiffe://{self.name}{path}", "aud": audience, "iat": now - age_s,
            "exp": now - age_s + ttl_s, "jti": str(uuid.uuid4())}
        payload.update(claims)
        return jwt.encode(payload, self.jwt_key, algorithm="ES256",
                          headers={"kid": self.kid, "typ": "JWT"})

    # -- bundle -------------------------------------------------------------------
    def bundle(self, *, sequence: int | None = 1, hint: int | None = None,
               jwt: bool = True, x509_roots: bool = True) -> dict[str, Any]:
        keys: list[dict[str, Any]] = []
        if x509_roots:
            der = self.root.cert.public_bytes(serialization.Encoding.DER)
            keys.append({"use": "x509-svid", "kty": "EC", "crv": "P-256",
                         **_ec_xy(self.root.cert.public_key()),
                         "x5c": [base64.b64encode(der).decode()]})
        if jwt:
            keys.append({"use": "jwt-svid", "kid": self.kid,
                         **ECAlgorithm.to_jwk(self.jwt_key.public_key(), as_dict=True)})
        document: dict[str, Any] = {"keys": keys}
        if sequence is not None:
            document["spiffe_sequence"] = sequence
        if hint is not None:
            document["spiffe_refresh_hint"] = hint
        return document

    def write_bundle(self, directory: Path, **kw: Any) -> Path:
        path = directory / f"{self.name}.bundle.json"
        path.write_text(json.dumps(self.bundle(**kw)))
        return path


def _ec_xy(public_key: Any) -> dict[str, str]:
    jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    return {"x": jwk["x"], "y": jwk["y"]}


# Business hours all week, all day: the example bundle's agents may act whenever a test runs.
ALWAYS_BUSINESS_HOURS = {"business_hours": {"start": "00:00", "end": "23:59:59.999999",
                                            "days": [0, 1, 2, 3, 4, 5, 6]}}


def settings_for(tmp_path: Path, *domains: TrustDomain, policies: Path | None = None,
                 **overrides: Any) -> Settings:
    """Non-dev settings trusting ``domains`` (bundle files in ``tmp_path``); any PEP may
    ask unless ``pep_allowlist`` is given (outside --dev an empty one refuses to start)."""
    trust = overrides.pop("trust_domains", None) or [
        TrustDomainConfig(name=td.name, bundle_file=td.write_bundle(tmp_path)) for td in domains]
    overrides.setdefault("live", ALWAYS_BUSINESS_HOURS)
    overrides.setdefault("pep_allowlist", ["*"])
    return load_settings(None, policies=policies or POLICIES, state_dir=tmp_path / "state",
                         trust_domains=trust, watch_policies=False, **overrides)


@asynccontextmanager
async def app_client(components: Any, *, client: tuple[str, int] = ("127.0.0.1", 50000),
                     lifespan: bool = True) -> Iterator[httpx.AsyncClient]:
    """The real app over ASGI. With ``lifespan`` (the default) the trust refresh thread
    starts and ``components`` are closed at the end; without, they stay open for reuse."""
    from contextlib import AsyncExitStack

    from pdp.server import create_app

    app = create_app(components, watch=False)
    async with AsyncExitStack() as stack:
        if lifespan:
            await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app, client=client)
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://pdp"))


def authorize_body(token: str | None = None, *, x509: str | None = None,
                   action: str = "read", dataset: str = "sales-daily") -> dict[str, Any]:
    subject = {"token": token} if token is not None else {"x509": x509}
    return {"subject": subject, "action": action,
            "resource": {"type": "App::Dataset", "id": dataset}}


__all__ = ["Issued", "TrustDomain", "app_client", "authorize_body", "settings_for"]
