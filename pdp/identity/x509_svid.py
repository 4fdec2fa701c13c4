"""X.509-SVIDs: a workload's SPIFFE ID in the URI SAN of a client certificate.

Two halves, both required. Path validation (RFC 5280) against the X.509
authorities of the leaf's own trust domain, done by cryptography's verifier at
the injected time; and the SPIFFE rules, done here, because that verifier
accepts two URI SANs or a leaf without ``digitalSignature``, while its WebPKI
end-entity defaults reject valid SVIDs (a critical SAN beside a subject), so
its end-entity policy is relaxed to ``permit_all``.
Ref: https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md

Every failure carries a ``reason`` string (those of
``testdata/spiffe/x509/expected.json``), checked in this order: the PEM
(``no-certificate``, ``malformed-certificate``), the SPIFFE rules
(:func:`check_spiffe_leaf_rules`), the bundle (``untrusted-trust-domain``,
``no-x509-authorities``), the path (``no-path-to-bundle-authority``) and only
then the clock (``outside-validity-period``): a chain that leads to no trusted
authority is refused as such, never as "expired", so the verifier says nothing
about a certificate it cannot vouch for (and nobody can pin an "expired
credential" on a workload by forging one in its name). The path is built at a
time every presented certificate is valid (:func:`path_time`), then the
presented certificates are checked at ``now``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

from pdp.identity.errors import (
    Expired,
    IdentityError,
    InvalidCertificate,
    MalformedCredential,
    MissingCredential,
    NotYetValid,
    UntrustedIssuer,
)
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import SpiffeId, is_spiffe_id, parse_spiffe_id
from pdp.identity.trust_bundle import TrustBundle

MAX_PEM_BYTES = 65536
MAX_CHAIN_CERTIFICATES = 8

_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
# Errors cryptography raises for a certificate or extension that does not parse.
_PARSE_ERRORS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


@dataclass(frozen=True, slots=True)
class X509Verification:
    """A verified X.509-SVID and every certificate its validity depends on
    (those presented and the validated path up to the bundle authority)."""

    identity: VerifiedIdentity
    chain: tuple[x509.Certificate, ...]


def verify_x509_svid(
    pem: str, bundles: Mapping[str, TrustBundle], now: datetime,
) -> VerifiedIdentity:
    """Verify a PEM chain (leaf first, then intermediates) at ``now``.

    Only the bundle of the leaf's own trust domain is used. Raises an
    :class:`~pdp.identity.errors.IdentityError` subclass with a ``reason``.
    """
    return verify_x509_chain(pem, bundles, now).identity


def verify_x509_chain(
    pem: str, bundles: Mapping[str, TrustBundle], now: datetime,
) -> X509Verification:
    """:func:`verify_x509_svid`, also returning the certificates whose validity
    periods bound the result (so a cache can re-check them at a later time)."""
    chain = load_pem_chain(pem)
    failures = check_spiffe_leaf_rules(chain)
    if failures:
        raise InvalidCertificate(f"not a valid X.509-SVID: {failures[0]}", reason=failures[0])
    leaf = chain[0]
    spiffe_id = leaf_spiffe_id(leaf)
    bundle = check_authorities(bundles.get(spiffe_id.trust_domain))  # its own domain only
    path = check_path(chain, bundle, path_time(chain, now))  # proven genuine first...
    try:
        check_validity_period(chain, now)  # ...then valid now
    except IdentityError as e:
        raise e.proven(str(spiffe_id)) from e
    identity = VerifiedIdentity(
        principal_id=str(spiffe_id),
        kind="x509-svid",
        issuer=leaf.issuer.rfc4514_string(),
        trust_domain=spiffe_id.trust_domain,
        path=spiffe_id.path,
        issued_at=leaf.not_valid_before_utc,
        not_before=leaf.not_valid_before_utc,
        expires_at=leaf.not_valid_after_utc,
        serial=format(leaf.serial_number, "x"),
        credential_sha256=hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
    )
    return X509Verification(identity, tuple(dict.fromkeys((*chain, *path))))


def load_pem_chain(pem: str) -> tuple[x509.Certificate, ...]:
    """The CERTIFICATE blocks of ``pem`` in order, skipping any PRIVATE KEY block."""
    if not pem or not pem.strip():
        raise MissingCredential("no certificate presented")
    if len(pem) > MAX_PEM_BYTES:
        raise MalformedCredential("PEM chain is too large", reason="malformed-certificate")
    blocks = [block for label, block in _pem_blocks(pem) if label == "CERTIFICATE"]
    if not blocks:
        raise MalformedCredential("no CERTIFICATE block", reason="no-certificate")
    if len(blocks) > MAX_CHAIN_CERTIFICATES:
        raise MalformedCredential("too many certificates", reason="malformed-certificate")
    return tuple(_load_certificate(block) for block in blocks)


def check_spiffe_leaf_rules(chain: Sequence[x509.Certificate]) -> list[str]:
    """Every SPIFFE rule the chain breaks, in a fixed order; empty when it conforms.

    Leaf: exactly one URI SAN, a SPIFFE ID with a path; ``cA=false``; key usage
    present with ``digitalSignature`` and without ``keyCertSign``/``cRLSign``;
    EKU, if present, with clientAuth. Every other certificate presented:
    ``cA=true`` and ``keyCertSign``.
    """
    leaf, signers = chain[0], chain[1:]
    failures = _uri_san_failures(leaf) + _leaf_usage_failures(leaf)
    for cert in signers:
        failures += _signing_cert_failures(cert)
    return list(dict.fromkeys(failures))  # unique, first occurrence first


def x509_svid_failures(
    chain: Sequence[x509.Certificate], bundle: TrustBundle | None, now: datetime,
) -> list[str]:
    """Every reason ``chain`` is refused against ``bundle`` at ``now`` (all SPIFFE
    rules, then the first of bundle, path and clock); empty when it is valid."""
    failures = check_spiffe_leaf_rules(chain)
    try:
        trusted = check_authorities(bundle)
        check_path(chain, trusted, path_time(chain, now))
        check_validity_period(chain, now)
    except IdentityError as e:
        failures.append(e.reason or type(e).__name__)
    return failures


def leaf_spiffe_id(leaf: x509.Certificate) -> SpiffeId:
    """The SPIFFE ID in the leaf's one URI SAN (call after :func:`check_spiffe_leaf_rules`)."""
    return parse_spiffe_id(uri_sans(leaf)[0])


def check_authorities(bundle: TrustBundle | None) -> TrustBundle:
    """The trust domain must have a bundle (``None``: not trusted) with an X.509 authority."""
    if bundle is None:
        raise UntrustedIssuer("the leaf's trust domain is not trusted",
                              reason="untrusted-trust-domain")
    if not bundle.x509_authorities:
        raise InvalidCertificate(
            f"trust domain {bundle.trust_domain!r} has no X.509 authorities",
            reason="no-x509-authorities")
    return bundle


def check_validity_period(chain: Sequence[x509.Certificate], now: datetime) -> None:
    """Every certificate presented is valid at ``now``; both ends inclusive (RFC 5280 §4.1.2.5)."""
    for cert in chain:
        if now < cert.not_valid_before_utc:
            raise NotYetValid("certificate is not valid yet", reason="outside-validity-period")
        if now > cert.not_valid_after_utc:
            raise Expired("certificate has expired", reason="outside-validity-period")


def path_time(chain: Sequence[x509.Certificate], now: datetime) -> datetime:
    """``now``, moved into the window where every presented certificate is valid, so that
    path validation proves the chain genuine whatever the clock says (the clock is
    checked afterwards, by :func:`check_validity_period`). With no common window no
    time works, and ``now`` is returned (the path then fails, or the clock does)."""
    start = max(cert.not_valid_before_utc for cert in chain)
    end = min(cert.not_valid_after_utc for cert in chain)
    if start > end:
        return now
    return min(max(now, start), end)


def check_path(
    chain: Sequence[x509.Certificate], bundle: TrustBundle, now: datetime,
) -> list[x509.Certificate]:
    """RFC 5280 path validation from the leaf to one of the bundle's X.509 authorities.

    Returns the validated path, leaf first, authority last.
    """
    verifier = (
        PolicyBuilder()
        .store(Store(list(bundle.x509_authorities)))
        .time(now)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            # SPIFFE leaf rules are checked by check_spiffe_leaf_rules instead.
            ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        return verifier.verify(chain[0], list(chain[1:])).chain
    except (VerificationError, *_PARSE_ERRORS) as e:
        raise InvalidCertificate(
            f"no path to a bundle authority: {e}", reason="no-path-to-bundle-authority") from e


def _pem_blocks(pem: str) -> Iterator[tuple[str, str]]:
    """Every complete PEM block with its label, in one linear pass (a regex with a
    lazy ``.*?`` goes quadratic on a chain of unterminated BEGIN lines)."""
    label: str | None = None
    lines: list[str] = []
    for line in pem.splitlines():
        line = line.strip()
        begin = _PEM_BEGIN.fullmatch(line)
        if begin:
            label, lines = begin.group(1), [line]
        elif label is not None:
            lines.append(line)
            if line == f"-----END {label}-----":
                yield label, "\n".join(lines) + "\n"
                label = None


def _load_certificate(block: str) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(block.encode("ascii"))
        # Parse the extensions and validity now, so that later reads cannot fail.
        _ = (cert.extensions, cert.not_valid_after_utc)
    except (*_PARSE_ERRORS, UnicodeEncodeError) as e:
        raise MalformedCredential(
            "certificate does not parse", reason="malformed-certificate") from e
    return cert


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def uri_sans(cert: x509.Certificate) -> list[str]:
    """The URI entries of the certificate's subjectAltName, in order."""
    san = _extension(cert, x509.SubjectAlternativeName)
    if not isinstance(san, x509.SubjectAlternativeName):
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def _uri_san_failures(leaf: x509.Certificate) -> list[str]:
    uris = uri_sans(leaf)
    if not uris:
        return ["leaf-no-uri-san"]
    if len(uris) > 1:
        return ["leaf-multiple-uri-sans"]
    if not is_spiffe_id(uris[0]):
        return ["leaf-bad-spiffe-id"]
    if parse_spiffe_id(uris[0]).is_root:
        return ["leaf-no-path"]
    return []


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    return isinstance(constraints, x509.BasicConstraints) and constraints.ca


def _leaf_usage_failures(leaf: x509.Certificate) -> list[str]:
    failures = ["leaf-ca-true"] if _is_ca(leaf) else []
    usage = _extension(leaf, x509.KeyUsage)
    if not isinstance(usage, x509.KeyUsage):
        failures.append("leaf-no-key-usage")
    else:
        if not usage.digital_signature:
            failures.append("leaf-no-digital-signature")
        if usage.key_cert_sign:
            failures.append("leaf-key-cert-sign")
        if usage.crl_sign:
            failures.append("leaf-crl-sign")
    eku = _extension(leaf, x509.ExtendedKeyUsage)
    if isinstance(eku, x509.ExtendedKeyUsage) and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        failures.append("leaf-eku-no-client-auth")
    return failures


def _signing_cert_failures(cert: x509.Certificate) -> list[str]:
    failures = [] if _is_ca(cert) else ["signing-cert-not-ca"]
    usage = _extension(cert, x509.KeyUsage)
    if not (isinstance(usage, x509.KeyUsage) and usage.key_cert_sign):
        failures.append("signing-cert-no-key-cert-sign")
    return failures


__all__ = [
    "X509Verification", "check_authorities", "check_path", "check_spiffe_leaf_rules",
    "check_validity_period", "leaf_spiffe_id", "load_pem_chain", "path_time", "uri_sans",
    "verify_x509_chain", "verify_x509_svid", "x509_svid_failures",
]
