"""A throwaway CA and X.509-SVID, valid now, and the headers proxies forward them in."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Svid:
    spiffe_id: str
    leaf: x509.Certificate
    ca: x509.Certificate

    @property
    def pem(self) -> str:
        return self.leaf.public_bytes(Encoding.PEM).decode()

    def xfcc(self) -> str:
        """An Envoy ``x-forwarded-client-cert`` element for this certificate."""
        digest = hashlib.sha256(self.leaf.public_bytes(Encoding.DER)).hexdigest()
        return (f"By=spiffe://example.org/envoy;Hash={digest};"
                f'Cert="{quote(self.pem, safe="")}";URI={self.spiffe_id}')

    def escaped(self) -> str:
        """nginx ``$ssl_client_escaped_cert``."""
        return quote(self.pem, safe="")

    def write_bundle(self, path: Path) -> Path:
        """A SPIFFE bundle trusting this CA for X.509-SVIDs."""
        der = self.ca.public_bytes(Encoding.DER)
        path.write_text(json.dumps({"keys": [
            {"use": "x509-svid", "kty": "EC", "x5c": [base64.b64encode(der).decode()]}]}))
        return path


def make_svid(spiffe_id: str, trust_domain: str = "example.org") -> Svid:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{trust_domain} test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(_usage(cert_sign=True), critical=True)
          .add_extension(x509.SubjectAlternativeName(
              [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]), critical=False)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "workload")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe_id)]), critical=False)
            .add_extension(_usage(cert_sign=False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return Svid(spiffe_id=spiffe_id, leaf=leaf, ca=ca)


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)
