"""Every rule of ../shared/IDENTITY.md, each met by a hostile credential, end to end.

Each case sends one hostile credential through the real app (``/v1/authorize``:
routing, cache, revocation, decision, record) and expects a deny with the
reason code of the rule it breaks. The verifier's unit tests cover each rule
in more depth; this file is the map from the rules to a refusal at the door.
Rules about trust bundles are met with hostile bundle documents instead.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from pdp.components import Components, build_components
from pdp.config import IssuerConfig, TrustDomainConfig
from pdp.identity.errors import UnknownKey
from pdp.identity.model import BearerToken
from pdp.identity.trust_bundle import BundleError
from pdp.identity.verifier import IdentityVerifier
from tests.identity.workloads import TrustDomain, app_client, authorize_body, settings_for

pytestmark = pytest.mark.anyio

IDP = "https://idp.example.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class World:
    td: TrustDomain
    partner: TrustDomain
    idp_key: rsa.RSAPrivateKey
    parts: Components

    def now(self) -> int:
        return int(datetime.now(UTC).timestamp())

    def claims(self, **overrides: Any) -> dict[str, Any]:
        base = {"sub": "spiffe://example.org/services/etl", "aud": "pdp", "iat": self.now() - 5,
                "exp": self.now() + 295, "jti": "j-1"}
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def svid(self, header: dict[str, Any] | None = None, key: Any = None, alg: str = "ES256",
             **claims: Any) -> str:
        head = {"alg": alg, "kid": self.td.kid, "typ": "JWT", **(header or {})}
        head = {k: v for k, v in head.items() if v is not None}
        return self.forge(head, self.claims(**claims), key or self.td.jwt_key, alg)

    def access(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        payload = {"iss": IDP, "sub": "billing-app", "aud": "pdp", "client_id": "billing-app",
                   "iat": self.now() - 5, "exp": self.now() + 295, "jti": "at-1", **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        head = {"alg": "RS256", "kid": "idp-1", "typ": "at+jwt", **(header or {})}
        return self.forge(head, payload, self.idp_key, "RS256")

    @staticmethod
    def forge(header: dict[str, Any], payload: dict[str, Any] | str, key: Any,
              alg: str | None) -> str:
        body = payload if isinstance(payload, str) else b64json(payload)
        signing_input = f"{b64json(header)}.{body}"
        if alg is None or alg == "none":
            return f"{signing_input}."
        algorithm = jwt.algorithms.get_default_algorithms()[alg]
        return f"{signing_input}.{b64(algorithm.sign(signing_input.encode(), key))}"

    def leaf(self, *, uris: tuple[str, ...] = ("spiffe://example.org/services/etl",),
             ca: bool = False, digital_signature: bool = True, key_cert_sign: bool = False,
             crl_sign: bool = False, eku: tuple[Any, ...] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
             not_after: datetime | None = None, issuer_is_ca: bool = True) -> str:
        """A leaf signed by the trust domain's intermediate, broken as told."""
        now = datetime.now(UTC)
        issuer = self.td.intermediate
        signer_pem = issuer.chain_pem
        signer_key, signer_name = issuer.key, issuer.cert.subject
        if not issuer_is_ca:  # sign with a non-CA certificate issued by the intermediate
            mid = self.td.svid("/not-a-ca")
            signer_pem, signer_key, signer_name = mid.chain_pem, mid.key, mid.cert.subject
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "w")]))
            .issuer_name(signer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=2))
            .not_valid_after(not_after or now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=digital_signature, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=key_cert_sign, crl_sign=crl_sign, encipher_only=False,
                decipher_only=False), critical=True))
        if uris:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(u) for u in uris]), critical=False)
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        from cryptography.hazmat.primitives.serialization import Encoding
        cert = builder.sign(signer_key, hashes.SHA256())
        return cert.public_bytes(Encoding.PEM).decode() + signer_pem


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("rules")
    td, partner = TrustDomain("example.org"), TrustDomain("partner.example")
    idp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp / "idp.jwks.json"
    jwks.write_text(json.dumps({"keys": [
        {"kid": "idp-1", "use": "sig", **RSAAlgorithm.to_jwk(idp_key.public_key(), as_dict=True)},
        {"kid": "shared-secret", "kty": "oct", "k": b64(b"not-a-verification-key")}]}))
    settings = settings_for(tmp, td, partner, issuers=[IssuerConfig(
        name="corp-idp", issuer=IDP, jwks_file=jwks, token_type="at+jwt",
        principal_claim="client_id", max_lifetime_s=900)])
    parts = build_components(settings)
    yield World(td, partner, idp_key, parts)
    parts.close()


async def refused(world: World, *, token: str | None = None, x509_pem: str | None = None) -> str:
    async with app_client(world.parts, lifespan=False) as client:
        r = await client.post("/v1/authorize", json=authorize_body(token, x509=x509_pem))
    body = r.json()
    assert r.status_code == 200 and body["decision"] == "deny", body
    return str(body["reason_codes"][0])


Case = Callable[[World], dict[str, str]]

RULES: list[tuple[str, Case, str]] = [
    # -- SPIFFE IDs ---------------------------------------------------------------------
    ("spiffe-id: scheme is exactly spiffe",
     lambda w: {"token": w.svid(sub="SPIFFE://example.org/services/etl")},
     "identity.bad_spiffe_id"),
    ("spiffe-id: no query, fragment, userinfo, port or percent-encoding",
     lambda w: {"token": w.svid(sub="spiffe://example.org:8443/services/etl")},
     "identity.bad_spiffe_id"),
    ("spiffe-id: trust domain lowercase a-z 0-9 . - _ only",
     lambda w: {"token": w.svid(sub="spiffe://Example.org/services/etl")},
     "identity.bad_spiffe_id"),
    ("spiffe-id: trust domain at most 255 bytes",
     lambda w: {"token": w.svid(sub=f"spiffe://{'a' * 256}/x")}, "identity.bad_spiffe_id"),
    ("spiffe-id: path segments non-empty, not . or .., no trailing /",
     lambda w: {"token": w.svid(sub="spiffe://example.org/services/../admin")},
     "identity.bad_spiffe_id"),
    ("spiffe-id: whole ID at most 2048 bytes",
     lambda w: {"token": w.svid(sub="spiffe://example.org/" + "a/" * 1100 + "a")},
     "identity.bad_spiffe_id"),
    ("spiffe-id: a trailing newline is not accepted (re.match $ trap)",
     lambda w: {"token": w.svid(sub="spiffe://example.org/services/etl\n")},
     "identity.bad_spiffe_id"),
    # -- trust bundles (per credential) ------------------------------------------------------
    ("bundle: an SVID is validated only with its own trust domain's bundle",
     lambda w: {"token": w.svid(key=w.partner.jwt_key, header={"kid": w.partner.kid})},
     "identity.unknown_key"),
    ("bundle: an X.509-SVID chaining to another domain's authority is refused",
     lambda w: {"x509": _claims_other_domain(w)}, "identity.certificate"),
    # -- X.509-SVIDs ---------------------------------------------------------------------
    ("x509: exactly one URI SAN",
     lambda w: {"x509": w.leaf(uris=("spiffe://example.org/a", "spiffe://example.org/b"))},
     "identity.certificate"),
    ("x509: the URI SAN is a SPIFFE ID with a non-root path",
     lambda w: {"x509": w.leaf(uris=("spiffe://example.org",))}, "identity.certificate"),
    ("x509: leaf cA=false",
     lambda w: {"x509": w.leaf(ca=True)}, "identity.certificate"),
    ("x509: leaf key usage has digitalSignature",
     lambda w: {"x509": w.leaf(digital_signature=False)}, "identity.certificate"),
    ("x509: leaf key usage has neither keyCertSign nor cRLSign",
     lambda w: {"x509": w.leaf(key_cert_sign=True, crl_sign=True)}, "identity.certificate"),
    ("x509: an EKU, if present, includes clientAuth",
     lambda w: {"x509": w.leaf(eku=(ExtendedKeyUsageOID.CODE_SIGNING,))},
     "identity.certificate"),
    ("x509: signing certificates are CAs with keyCertSign",
     lambda w: {"x509": w.leaf(issuer_is_ca=False)}, "identity.certificate"),
    ("x509: path validation at the current time",
     lambda w: {"x509": w.leaf(not_after=datetime.now(UTC) - timedelta(minutes=1))},
     "identity.expired"),
    # -- JWT-SVIDs -----------------------------------------------------------------------
    ("jwt-svid: compact serialization only",
     lambda w: {"token": json.dumps({"payload": b64json(w.claims()), "signatures": []})},
     "identity.malformed"),
    ("jwt-svid: header members alg, kid, typ only (jku refused)",
     lambda w: {"token": w.svid(header={"jku": "https://evil.example/jwks"})},
     "identity.header"),
    ("jwt-svid: header members alg, kid, typ only (crit refused)",
     lambda w: {"token": w.svid(header={"crit": ["exp"]})}, "identity.header"),
    ("jwt-svid: typ absent, JWT or JOSE",
     lambda w: {"token": w.svid(header={"typ": "secevent+jwt"})}, "identity.type"),
    ("jwt-svid: alg none is never accepted",
     lambda w: {"token": World.forge({"alg": "none", "kid": w.td.kid}, w.claims(), None, None)},
     "identity.algorithm"),
    ("jwt-svid: HS* is never accepted (public key as HMAC secret)",
     lambda w: {"token": World.forge({"alg": "HS256", "kid": w.td.kid, "typ": "JWT"},
                                     w.claims(), b"public-key-bytes", "HS256")},
     "identity.algorithm"),
    ("jwt-svid: sub is a SPIFFE ID (strict parser)",
     lambda w: {"token": w.svid(sub="spiffe://example.org//etl")}, "identity.bad_spiffe_id"),
    ("jwt-svid: the key is chosen by kid among that domain's jwt-svid keys",
     lambda w: {"token": w.svid(header={"kid": "made-up"})}, "identity.unknown_key"),
    ("jwt-svid: aud is required",
     lambda w: {"token": w.svid(aud=None)}, "identity.audience"),
    ("jwt-svid: aud must name this PDP",
     lambda w: {"token": w.svid(aud="billing-service")}, "identity.audience"),
    ("jwt-svid: more than one audience is refused (replayable)",
     lambda w: {"token": w.svid(aud=["pdp", "billing-service"])}, "identity.audience"),
    ("jwt-svid: exp is required",
     lambda w: {"token": w.svid(exp=None)}, "identity.claims"),
    ("jwt-svid: exp is an integer, not a string (pyjwt accepts one)",
     lambda w: {"token": w.svid(exp=str(w.now() + 300))}, "identity.claims"),
    ("jwt-svid: exp is an integer, not a bool",
     lambda w: {"token": w.svid(exp=True)}, "identity.claims"),
    ("jwt-svid: an expired token is refused beyond the small leeway",
     lambda w: {"token": w.svid(iat=w.now() - 400, exp=w.now() - 61)}, "identity.expired"),
    ("jwt-svid: the signature must verify (payload swapped)",
     lambda w: {"token": _swap_payload(w)}, "identity.bad_signature"),
    # -- OAuth access tokens ---------------------------------------------------------------
    ("oauth: the issuer matches exactly (no trailing / unless configured)",
     lambda w: {"token": w.access(iss=IDP + "/")}, "identity.untrusted_issuer"),
    ("oauth: an at+jwt is never accepted as a JWT-SVID",
     lambda w: {"token": w.svid(header={"typ": "at+jwt"}, iss="https://nobody.example")},
     "identity.untrusted_issuer"),
    ("oauth: a JWT-SVID-typed token is never accepted as an access token",
     lambda w: {"token": w.access(header={"typ": "JWT"})}, "identity.type"),
    ("oauth: RFC 9068 claims iss exp aud sub client_id iat jti are required",
     lambda w: {"token": w.access(client_id=None)}, "identity.claims"),
    ("oauth: a per-issuer maximum lifetime (exp - iat)",
     lambda w: {"token": w.access(iat=w.now() - 5, exp=w.now() + 3600)},
     "identity.lifetime_exceeded"),
    ("oauth: kty oct keys are ignored (never an HMAC secret)",
     lambda w: {"token": World.forge({"alg": "HS256", "kid": "shared-secret", "typ": "at+jwt"},
                                     {**w.claims(sub="billing-app"), "iss": IDP,
                                      "client_id": "billing-app"},
                                     b"not-a-verification-key", "HS256")},
     "identity.algorithm"),
    ("pyjwt trap: x5u and jwk headers are refused",
     lambda w: {"token": w.access(header={"x5u": "https://evil.example/cert"})},
     "identity.header"),
    # -- delegation -------------------------------------------------------------------------
    ("delegation: the act chain depth is capped",
     lambda w: {"token": w.svid(act={"sub": "spiffe://example.org/a", "act": {
         "sub": "spiffe://example.org/b", "act": {"sub": "spiffe://example.org/c", "act": {
             "sub": "spiffe://example.org/d"}}}})}, "identity.claims"),
    ("delegation: the current actor is a known workload form",
     lambda w: {"token": w.svid(act={"sub": "spiffe://untrusted.example/agent"})},
     "identity.untrusted_issuer"),
    ("delegation: trust is verified at every hop (the actor must be allowed too)",
     lambda w: {"token": w.svid(act={"sub": "spiffe://example.org/services/unknown"})},
     "policy.no_permit"),
]


def _swap_payload(w: World) -> str:
    header, _, signature = w.svid().split(".")
    return f"{header}.{b64json(w.claims(sub='spiffe://example.org/services/admin-console'))}.{signature}"


def _claims_other_domain(w: World) -> str:
    """A leaf naming example.org, issued by partner.example's CA."""
    issuer = w.partner.intermediate
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives.serialization import Encoding
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "w")]))
            .issuer_name(issuer.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://example.org/services/etl")]),
                critical=False)
            .sign(issuer.key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM).decode() + issuer.chain_pem


@pytest.mark.parametrize("rule, credential, code", RULES, ids=[r[0] for r in RULES])
async def test_rule_refuses_a_hostile_credential(world: World, rule: str, credential: Case,
                                                 code: str) -> None:
    given = credential(world)
    got = await refused(world, token=given.get("token"), x509_pem=given.get("x509"))
    assert got == code, rule


async def test_the_honest_credentials_of_the_same_world_are_allowed(world: World) -> None:
    """The control: without the hostile change, each kind of credential passes."""
    async with app_client(world.parts, lifespan=False) as client:
        svid = (await client.post("/v1/authorize", json=authorize_body(world.svid()))).json()
        leaf = (await client.post("/v1/authorize", json=authorize_body(x509=world.leaf()))).json()
        access = (await client.post("/v1/authorize", json=authorize_body(world.access()))).json()
    assert svid["decision"] == "allow" and leaf["decision"] == "allow"
    assert access["principal"] == 'Pdp::Workload::"billing-app"'
    assert access["reason_codes"][0].startswith("policy.")  # verified; the bundle decides


# -- trust bundle rules, met with hostile bundle documents -----------------------------------

def _verifier_with_bundle(tmp_path: Path, document: Any) -> IdentityVerifier:
    path = tmp_path / "bundle.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return IdentityVerifier.from_settings(settings_for(
        tmp_path, trust_domains=[TrustDomainConfig(name="example.org", bundle_file=path)]))


def test_bundle_rule_keys_must_be_present(tmp_path: Path) -> None:
    with pytest.raises(BundleError):
        _verifier_with_bundle(tmp_path, {"spiffe_sequence": 1})


def test_bundle_rule_empty_keys_make_every_svid_invalid(tmp_path: Path, world: World) -> None:
    verifier = _verifier_with_bundle(tmp_path, {"keys": []})
    with pytest.raises(UnknownKey):
        verifier.verify(BearerToken(world.svid()), datetime.now(UTC))


def test_bundle_rule_entries_without_use_or_jwt_svid_without_kid_are_ignored(
        tmp_path: Path, world: World) -> None:
    jwk = ECAlgorithm.to_jwk(world.td.jwt_key.public_key(), as_dict=True)
    verifier = _verifier_with_bundle(tmp_path, {"keys": [
        {**jwk, "kid": world.td.kid},                      # no use: ignored
        {**jwk, "kid": world.td.kid + "-x", "use": "sig"},  # unknown use: ignored
        {**jwk, "use": "jwt-svid"}]})                      # jwt-svid without kid: ignored
    with pytest.raises(UnknownKey):
        verifier.verify(BearerToken(world.svid()), datetime.now(UTC))


def test_bundle_rule_a_lower_spiffe_sequence_is_refused(tmp_path: Path, world: World) -> None:
    verifier = _verifier_with_bundle(tmp_path, world.td.bundle(sequence=7))
    (tmp_path / "bundle.json").write_text(json.dumps({"keys": [], "spiffe_sequence": 6}))
    errors = verifier.refresh(datetime.now(UTC), force=True)
    assert errors and "sequence" in errors[0]
    assert verifier.verify(BearerToken(world.svid()), datetime.now(UTC))
