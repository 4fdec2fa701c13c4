"""A local X.509-SVID authority for development (``pdp serve --dev``): never for production.

The X.509 counterpart of :mod:`pdp.identity.dev_issuer`: one self-signed P-256 CA
for ``spiffe://example.org``, created once under ``<state_dir>/dev/`` (key mode
0600), and :func:`mint_x509_svid` to make leaf SVIDs the PDP then verifies like any
other (one URI SAN, ``cA=false``, ``digitalSignature``, client and server auth).
``pdp serve --dev`` trusts the CA through an ordinary trust-domain entry
(:func:`with_dev_x509_trust`), so the X.509 path is exercised exactly as in production.
Ref: https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md

Example::

    svid = mint_x509_svid(Path(".pdp"), "spiffe://example.org/services/etl")
    body = {"subject": {"x509": svid.chain_pem}, ...}
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pdp.config import Settings, TrustDomainConfig
from pdp.identity.dev_issuer import DEV_TRUST_DOMAIN
from pdp.identity.errors import BadSpiffeId
from pdp.identity.spiffe_id import parse_spiffe_id

CA_KEY_FILE = Path("dev") / "x509-ca-key.pem"
CA_CERT_FILE = Path("dev") / "x509-ca.pem"
BUNDLE_FILE = Path("dev") / "x509-bundle.json"
CA_LIFETIME = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class DevSvid:
    """A minted X.509-SVID: the chain to present (leaf only: the CA is the trust anchor)
    and the leaf's private key, both PEM."""

    chain_pem: str
    key_pem: str
    spiffe_id: str
    serial_hex: str


def dev_ca(state_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The dev CA's key and certificate, created (once, key 0600) when absent."""
    key_path, cert_path = state_dir / CA_KEY_FILE, state_dir / CA_CERT_FILE
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:  # O_EXCL: a concurrent process that created it first wins; we read theirs
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            cert_path.unlink(missing_ok=True)  # a certificate of an older key is useless
        except FileExistsError:
            pass
    if key_path.stat().st_mode & 0o077:
        raise PermissionError(f"{key_path} is readable by other users; chmod 600 it")
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} does not hold an EC private key")
    key = loaded
    cert = _load_cert(cert_path)
    if cert is None or cert.public_key() != key.public_key() or (
            cert.not_valid_after_utc < datetime.now(UTC) + timedelta(days=1)):
        cert = _self_signed_ca(key)
        tmp = cert_path.with_suffix(".tmp")
        tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        tmp.replace(cert_path)
    return key, cert


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):  # absent or damaged: made again from the key
        return None


def _self_signed_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pdp dev CA"),
                      x509.NameAttribute(NameOID.COMMON_NAME, DEV_TRUST_DOMAIN)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{DEV_TRUST_DOMAIN}")]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


def mint_x509_svid(state_dir: Path, spiffe_id: str, *, ttl_s: int = 3600,
                   now: datetime | None = None) -> DevSvid:
    """A leaf X.509-SVID for ``spiffe_id`` (of ``example.org``) valid ``ttl_s`` seconds.

    Raises ``ValueError`` for an invalid SPIFFE ID, another trust domain or a bad ttl.
    """
    try:
        subject = parse_spiffe_id(spiffe_id)
    except BadSpiffeId as e:
        raise ValueError(f"not a SPIFFE ID ({e.reason}): {spiffe_id!r}") from e
    if subject.trust_domain != DEV_TRUST_DOMAIN:
        raise ValueError(f"the dev CA only issues SVIDs of {DEV_TRUST_DOMAIN}")
    if not subject.path:
        raise ValueError("an X.509-SVID names a workload: give a path (spiffe://example.org/x)")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    ca_key, ca_cert = dev_ca(state_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    start = now or datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pdp dev")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - timedelta(seconds=30))
            .not_valid_after(start + timedelta(seconds=ttl_s))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(str(subject))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return DevSvid(
        chain_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode(),
        spiffe_id=str(subject), serial_hex=format(cert.serial_number, "x"))


def write_dev_bundle(state_dir: Path) -> Path:
    """Write ``<state_dir>/dev/x509-bundle.json``, a SPIFFE bundle holding the dev CA."""
    _, cert = dev_ca(state_dir)
    der = cert.public_bytes(serialization.Encoding.DER)
    document = {"keys": [{"use": "x509-svid", "kty": "EC", "crv": "P-256",
                          "x5c": [base64.b64encode(der).decode()]}], "spiffe_sequence": 1}
    path = state_dir / BUNDLE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def with_dev_x509_trust(settings: Settings) -> Settings:
    """``settings`` trusting the dev CA for ``example.org``, unless a trust domain of that
    name is configured already (the operator's own bundle wins; the dev JWT key is added
    to it either way, see :class:`~pdp.identity.verifier.IdentityVerifier`)."""
    if any(td.name == DEV_TRUST_DOMAIN for td in settings.trust_domains):
        return settings
    domain = TrustDomainConfig(name=DEV_TRUST_DOMAIN,
                               bundle_file=write_dev_bundle(settings.state_dir).resolve())
    return settings.model_copy(update={"trust_domains": [*settings.trust_domains, domain]})


__all__ = ["DevSvid", "dev_ca", "mint_x509_svid", "with_dev_x509_trust", "write_dev_bundle"]
