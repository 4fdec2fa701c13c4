"""Only a verified credential moves a principal's adaptive state (issue 13, item 2).

Forged credentials naming a victim workload, sent many times, must leave its
risk level, behaviour signals and inventory entry as they were; the refusals
are counted against the PEP and the source address that sent them. A genuine
credential of the victim that is expired still counts against the victim,
because its signature (or certificate path) proved it is the victim's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pdp.audit.auditing.inventory import RefusalTally, identity_inventory
from pdp.audit.memory import MemoryDecisionLog
from pdp.components import Components, build_components
from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.identity.errors import IdentityError
from pdp.identity.model import BearerToken, Credential, X509Chain
from pdp.identity.x509_svid import verify_x509_chain
from tests.identity.workloads import TrustDomain, settings_for

VICTIM_PATH = "/services/etl"
VICTIM = f"spiffe://example.org{VICTIM_PATH}"
ATTACKER_PEP = "spiffe://example.org/peps/compromised"
ATTACKER_SOURCE = "203.0.113.66"
TIMES = 12  # well over expired_uses (5) and revoked_uses (1)


@pytest.fixture(scope="module")
def domains() -> tuple[TrustDomain, TrustDomain, TrustDomain]:
    """The trusted example.org, a forger's own CA calling itself example.org, evil.org."""
    return TrustDomain("example.org"), TrustDomain("example.org"), TrustDomain("evil.org")


@pytest.fixture()
def parts(tmp_path: Path, domains) -> Iterator[Components]:
    trusted = domains[0]
    components = build_components(settings_for(tmp_path, trusted),
                                  log=MemoryDecisionLog())
    yield components
    components.close()


def _ask(parts: Components, credential: Credential, *, pep: str | None = None,
         source: str | None = None):
    # The example schema declares no source address: only refused requests carry one.
    return parts.service.authorize_sync(AuthorizeInput(
        credential=credential, action="read", resource=ResourceRef("App::Dataset", "sales-daily"),
        context={"source_address": source} if source else {}, pep=pep))


def _expired_jwt(key: ec.EllipticCurvePrivateKey, kid: str, sub: str = VICTIM) -> str:
    now = int(datetime.now(UTC).timestamp())
    return jwt.encode({"sub": sub, "aud": "pdp", "iat": now - 3600, "exp": now - 3000,
                       "jti": str(uuid.uuid4())}, key, algorithm="ES256",
                      headers={"kid": kid, "typ": "JWT"})


def _self_signed_expired(spiffe_id: str = VICTIM) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "forged")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=10)).not_valid_after(now - timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
                       critical=False)
        .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _forgeries(domains) -> dict[str, Credential]:
    trusted, forger, evil = domains
    past = datetime.now(UTC) - timedelta(minutes=1)
    return {
        # The victim's kid, the forger's key: the signature does not verify.
        "jwt bad signature": BearerToken(_expired_jwt(forger.jwt_key, trusted.kid)),
        # Signed by another trust domain's key (its own kid): unknown in example.org.
        "jwt other trust domain": BearerToken(_expired_jwt(evil.jwt_key, evil.kid)),
        "jwt unknown kid": BearerToken(_expired_jwt(forger.jwt_key, "no-such-kid")),
        # An expired SVID chaining up to the forger's CA named example.org.
        "x509 forged chain": X509Chain(forger.svid(VICTIM_PATH, not_after=past).chain_pem),
        "x509 self-signed": X509Chain(_self_signed_expired()),
    }


def _inventory(parts: Components):
    refusals = RefusalTally(("source_address",))
    entries = identity_inventory(parts.log.iter_all(), now=datetime.now(UTC),  # type: ignore[attr-defined]
                                 refusals=refusals)
    return {e.principal: e.as_dict() for e in entries}, refusals.as_list()


@pytest.mark.parametrize("kind", ["jwt bad signature", "jwt other trust domain",
                                  "jwt unknown kid", "x509 forged chain", "x509 self-signed"])
def test_forged_credentials_naming_a_victim_leave_its_risk_and_inventory_unchanged(
        parts: Components, domains, kind: str) -> None:
    trusted = domains[0]
    genuine = BearerToken(trusted.jwt_svid(VICTIM_PATH))
    assert _ask(parts, genuine, pep="spiffe://example.org/peps/envoy").decision == "allow"
    before, _ = _inventory(parts)
    forged = _forgeries(domains)[kind]

    decisions = [_ask(parts, forged, pep=ATTACKER_PEP, source=ATTACKER_SOURCE)
                 for _ in range(TIMES)]

    assert parts.live.store.view().state.auto_risk.get(VICTIM) is None  # type: ignore[attr-defined]
    for decision in decisions:
        assert decision.decision == "deny"
        assert decision.reason_codes[0] != "identity.expired"  # nothing proven, nothing "expired"
        assert decision.principal is None and decision.proven_principal is None
    after_genuine = _ask(parts, genuine, pep="spiffe://example.org/peps/envoy")
    assert after_genuine.decision == "allow"
    assert after_genuine.live is not None and after_genuine.live.principal_risk_level == 0
    assert "risk raised" not in after_genuine.explanation
    after, refused = _inventory(parts)
    assert after[VICTIM]["requests"] == before[VICTIM]["requests"] + 1  # the genuine one only
    assert after[VICTIM]["denies"] == before[VICTIM]["denies"] == 0
    # The refusals are the sender's: the calling PEP and the source address.
    [row] = refused
    assert (row["pep"], row["source"], row["refusals"]) == (ATTACKER_PEP, ATTACKER_SOURCE, TIMES)
    # The decision records never name the victim as the principal of a forgery.
    forged_records = [r for r in parts.log.iter_all()  # type: ignore[attr-defined]
                      if r.get("pep") == ATTACKER_PEP]
    assert len(forged_records) == TIMES
    assert all(r["principal"] is None and "refused_principal" not in (r["credential"] or {})
               for r in forged_records)


def test_a_genuine_expired_svid_still_counts_against_its_own_principal(
        parts: Components, domains) -> None:
    trusted = domains[0]
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = X509Chain(trusted.svid(VICTIM_PATH, not_after=past).chain_pem)
    for _ in range(5):  # expired_uses
        decision = _ask(parts, expired)
        assert decision.reason_codes[0] == "identity.expired"
        assert decision.proven_principal == VICTIM
    entry = parts.live.store.view().state.auto_risk.get(VICTIM)  # type: ignore[attr-defined]
    assert entry is not None and entry.signals == ("expired_credential",)
    [record] = [r for r in parts.log.iter_all()][-1:]  # type: ignore[attr-defined]
    assert record["principal"] is None
    assert record["credential"]["refused_principal"] == VICTIM


def test_path_validation_comes_before_the_clock(domains) -> None:
    """An expired chain that leads to no trusted authority is not called expired."""
    trusted, forger, _ = domains
    bundles = {"example.org": _bundle(trusted)}
    now = datetime.now(UTC)
    past = now - timedelta(minutes=1)
    with pytest.raises(IdentityError) as forged:
        verify_x509_chain(forger.svid(VICTIM_PATH, not_after=past).chain_pem, bundles, now)
    assert forged.value.reason == "no-path-to-bundle-authority"
    assert forged.value.proven_principal is None
    with pytest.raises(IdentityError) as genuine:
        verify_x509_chain(trusted.svid(VICTIM_PATH, not_after=past).chain_pem, bundles, now)
    assert genuine.value.reason == "outside-validity-period"
    assert genuine.value.proven_principal == VICTIM


def _bundle(domain: TrustDomain):
    import json

    from pdp.identity.trust_bundle import parse_spiffe_bundle

    return parse_spiffe_bundle(json.dumps(domain.bundle()).encode(), domain.name)
