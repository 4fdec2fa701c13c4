"""JWT-SVID verification: one hostile token per rule of IDENTITY.md "JWT-SVID" and "pyjwt traps".

Every token goes through the whole IdentityVerifier at the fixed time ``tk.now``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pdp.identity.errors import (
    BadSignature,
    BadSpiffeId,
    DisallowedAlgorithm,
    Expired,
    ForbiddenHeader,
    IdentityError,
    InvalidClaim,
    LifetimeExceeded,
    MalformedCredential,
    NotYetValid,
    UnknownKey,
    UntrustedIssuer,
    WrongAudience,
    WrongTokenType,
)
from pdp.identity.jwt_svid import verify_jwt_svid
from pdp.identity.model import BearerToken, VerifiedIdentity
from pdp.identity.trust_bundle import TrustBundle


def verify(tk: Any, token: str, **verifier_options: Any) -> VerifiedIdentity:
    return tk.verifier(**verifier_options).verify(BearerToken(token), tk.now)


def refused(tk: Any, token: str, error: type[IdentityError], **options: Any) -> IdentityError:
    with pytest.raises(error) as e:
        verify(tk, token, **options)
    return e.value


# -- the happy path ---------------------------------------------------------------

def test_valid_jwt_svid_yields_the_workload_identity(tk: Any) -> None:
    token = tk.svid({"scope": "a b", "iss": "https://spire.example.org"})
    identity = verify(tk, token)
    assert identity.principal_id == "spiffe://example.org/ns/prod/sa/api"
    assert identity.kind == "jwt-svid"
    assert (identity.trust_domain, identity.path) == ("example.org", "/ns/prod/sa/api")
    assert identity.issuer == "https://spire.example.org"
    assert identity.scopes == {"a", "b"}
    assert identity.jti == "jti-1"
    assert identity.expires_at is not None and identity.expires_at.timestamp() == tk.t + 290
    assert identity.expires_at.tzinfo is not None
    assert identity.issued_at is not None and identity.issued_at.timestamp() == tk.t - 10
    assert identity.flags == () and identity.actor is None and identity.chain_depth == 0
    assert identity.credential_sha256 == hashlib.sha256(token.encode()).hexdigest()


def test_jwt_svid_without_iss_is_issued_by_its_trust_domain(tk: Any) -> None:
    assert verify(tk, tk.svid()).issuer == "spiffe://example.org"


@pytest.mark.parametrize("typ", [None, "JWT", "JOSE"])
def test_jwt_svid_typ_may_be_absent_jwt_or_jose(tk: Any, typ: str | None) -> None:
    assert verify(tk, tk.svid(header={"typ": typ if typ else tk.DROP})).kind == "jwt-svid"


@pytest.mark.parametrize("alg,kid", [("RS256", "svid-rsa-1"), ("PS256", "svid-rsa-1"),
                                     ("RS512", "svid-rsa-1"), ("ES384", "svid-p384-1")])
def test_jwt_svid_with_other_asymmetric_algorithms_verifies(tk: Any, alg: str, kid: str) -> None:
    key = tk.rsa_key if kid == tk.SVID_RSA_KID else tk.ec384
    assert verify(tk, tk.svid(header={"alg": alg, "kid": kid}, key=key)).kind == "jwt-svid"


def test_scopes_may_come_from_an_scp_list(tk: Any) -> None:
    assert verify(tk, tk.svid({"scp": ["x", "y"]})).scopes == {"x", "y"}


# -- compact serialization only ---------------------------------------------------

def test_jwt_svid_in_json_serialization_is_rejected(tk: Any) -> None:
    head, body, sig = tk.svid().split(".")
    token = json.dumps({"protected": head, "payload": body, "signature": sig})
    refused(tk, token, MalformedCredential)


def test_jwe_shaped_token_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid() + ".x.y", MalformedCredential)


def test_token_with_whitespace_is_rejected(tk: Any) -> None:
    refused(tk, " " + tk.svid(), MalformedCredential)


def test_non_canonical_base64_signature_is_rejected(tk: Any) -> None:
    head, body, sig = tk.svid().split(".")
    # 64-byte signature → 86 chars with 4 unused low bits in the last one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(sig[-1]) ^ 1]
    refused(tk, f"{head}.{body}.{sig[:-1]}{last}", MalformedCredential)


def test_header_with_duplicate_alg_member_is_rejected(tk: Any) -> None:
    raw = '{"alg":"ES256","kid":"svid-ec-1","alg":"none"}'
    head = tk.b64url(raw.encode())
    _, body, sig = tk.svid().split(".")
    refused(tk, f"{head}.{body}.{sig}", MalformedCredential)


def test_payload_that_is_not_a_json_object_is_rejected(tk: Any) -> None:
    token = tk.jws({"alg": "ES256", "kid": tk.SVID_KID}, tk.b64url(b"[1,2]"), tk.ec256)
    refused(tk, token, MalformedCredential)


# -- header allow-list ------------------------------------------------------------

def test_jwt_svid_with_jku_header_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid(header={"jku": "https://attacker.example/jwks"}), ForbiddenHeader)


@pytest.mark.parametrize("member,value", [
    ("x5u", "https://attacker.example/cert.pem"),
    ("jwk", {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
    ("x5c", ["MIIB"]),
    ("crit", ["exp"]),
    ("b64", False),
    ("cty", "JWT"),
    ("zip", "DEF"),
    ("x5t#S256", "abc"),
    ("nonce", "n"),
])
def test_jwt_svid_with_any_other_header_member_is_rejected(tk: Any, member: str, value: Any) -> None:
    refused(tk, tk.svid(header={member: value}), ForbiddenHeader)


# -- typ ---------------------------------------------------------------------------

def test_at_jwt_is_never_accepted_as_a_jwt_svid(tk: Any) -> None:
    # No issuer is configured for it, so it cannot be an access token either.
    refused(tk, tk.svid(header={"typ": "at+jwt"}), UntrustedIssuer, issuers=[])
    with pytest.raises(WrongTokenType):
        verify_jwt_svid(tk.svid(header={"typ": "at+jwt"}), bundles=tk.bundles(),
                        rules={"example.org": tk.rules()}, now=tk.now)


@pytest.mark.parametrize("typ", ["jwt", "application/jwt", "secevent+jwt", 1, ["JWT"]])
def test_jwt_svid_with_another_typ_is_rejected(tk: Any, typ: Any) -> None:
    refused(tk, tk.svid(header={"typ": typ}), WrongTokenType)


# -- alg ---------------------------------------------------------------------------

def test_alg_none_is_rejected(tk: Any) -> None:
    token = tk.jws({"alg": "none", "kid": tk.SVID_KID}, tk.svid_claims())
    refused(tk, token, DisallowedAlgorithm)


def test_hs256_signed_with_the_public_key_is_rejected(tk: Any) -> None:
    public_pem = tk.ec256.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    token = tk.jws({"alg": "HS256", "kid": tk.SVID_KID, "typ": "JWT"}, tk.svid_claims(),
                   public_pem, "HS256")
    refused(tk, token, DisallowedAlgorithm)


def test_alg_outside_the_configured_allow_list_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid(), DisallowedAlgorithm, svid_rules=tk.rules(algorithms=frozenset({"RS256"})))


@pytest.mark.parametrize("alg", [None, 256, "es256", "EdDSA", "ES256K"])
def test_missing_or_unknown_alg_is_rejected(tk: Any, alg: Any) -> None:
    token = tk.jws({"alg": alg, "kid": tk.SVID_KID} if alg else {"kid": tk.SVID_KID},
                   tk.svid_claims(), tk.ec256, "ES256")
    refused(tk, token, DisallowedAlgorithm)


def test_alg_that_does_not_fit_the_key_type_is_rejected(tk: Any) -> None:
    # RS256 claimed, but the kid names an EC key: the token cannot switch how a key is used.
    token = tk.svid(header={"alg": "RS256"}, key=tk.rsa_key)
    refused(tk, token, DisallowedAlgorithm)


def test_es256_with_a_p384_key_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid(header={"kid": tk.SVID_P384_KID}, key=tk.ec384, alg="ES384"),
            DisallowedAlgorithm)


# -- sub ---------------------------------------------------------------------------

@pytest.mark.parametrize("sub,reason", [
    ("spiffe://Example.org/api", "bad-trust-domain-char"),
    ("SPIFFE://example.org/api", "bad-scheme"),
    ("spiffe://example.org/api/", "trailing-slash"),
    ("spiffe://example.org/api\n", "bad-path-char"),
    ("spiffe://example.org", "no-path"),
])
def test_jwt_svid_sub_must_be_a_strict_spiffe_id(tk: Any, sub: str, reason: str) -> None:
    assert refused(tk, tk.svid({"sub": sub}), BadSpiffeId).reason == reason


def test_jwt_svid_without_sub_is_refused(tk: Any) -> None:
    refused(tk, tk.svid({"sub": tk.DROP}), UntrustedIssuer)
    with pytest.raises(InvalidClaim) as e:
        verify_jwt_svid(tk.svid({"sub": tk.DROP}), bundles=tk.bundles(),
                        rules={"example.org": tk.rules()}, now=tk.now)
    assert e.value.claim == "sub"


def test_jwt_svid_of_a_domain_whose_bundle_has_no_keys_is_rejected(tk: Any) -> None:
    # {"keys": []} is a valid bundle: every key revoked, every SVID of the domain refused.
    bundles = {**tk.bundles(), "example.org": TrustBundle("example.org")}
    with pytest.raises(UnknownKey):
        verify_jwt_svid(tk.svid(), bundles=bundles, rules={"example.org": tk.rules()}, now=tk.now)


def test_jwt_svid_of_an_unconfigured_trust_domain_is_untrusted(tk: Any) -> None:
    refused(tk, tk.svid({"sub": "spiffe://evil.org/api"}), UntrustedIssuer)


# -- key selection -----------------------------------------------------------------

def test_key_of_another_trust_domain_is_unknown_here(tk: Any) -> None:
    # Signed by other.org's key and naming its kid, but claiming an example.org sub.
    token = tk.svid(header={"kid": tk.OTHER_KID}, key=tk.other)
    refused(tk, token, UnknownKey)


def test_jwt_svid_without_kid_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid(header={"kid": tk.DROP}), UnknownKey)


@pytest.mark.parametrize("kid", ["nope", "", 7, ["svid-ec-1"]])
def test_jwt_svid_with_an_unknown_kid_is_rejected(tk: Any, kid: Any) -> None:
    refused(tk, tk.svid(header={"kid": kid}), UnknownKey)


# -- signature ---------------------------------------------------------------------

def test_jwt_svid_signed_by_an_untrusted_key_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid(key=tk.other), BadSignature)


def test_jwt_svid_with_a_swapped_payload_is_rejected(tk: Any) -> None:
    head, _, sig = tk.svid().split(".")
    _, body, _ = tk.svid({"sub": "spiffe://example.org/admin"}, key=tk.other).split(".")
    refused(tk, f"{head}.{body}.{sig}", BadSignature)


def test_jwt_svid_with_a_truncated_signature_is_rejected(tk: Any) -> None:
    head, body, sig = tk.svid().split(".")
    refused(tk, f"{head}.{body}.{sig[:40]}", BadSignature)


# -- aud ---------------------------------------------------------------------------

def test_jwt_svid_without_aud_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid({"aud": tk.DROP}), WrongAudience)


def test_jwt_svid_for_another_audience_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid({"aud": "billing"}), WrongAudience)


def test_jwt_svid_with_several_audiences_is_rejected_by_default(tk: Any) -> None:
    refused(tk, tk.svid({"aud": ["pdp", "billing"]}), WrongAudience)


def test_several_audiences_pass_when_allowed(tk: Any) -> None:
    rules = tk.rules(allow_multiple_audiences=True)
    assert verify(tk, tk.svid({"aud": ["billing", "pdp"]}), svid_rules=rules).kind == "jwt-svid"


def test_single_audience_list_is_accepted(tk: Any) -> None:
    assert verify(tk, tk.svid({"aud": ["pdp"]})).kind == "jwt-svid"


@pytest.mark.parametrize("aud", [[], ""])
def test_empty_aud_is_rejected(tk: Any, aud: Any) -> None:
    refused(tk, tk.svid({"aud": aud}), WrongAudience)


@pytest.mark.parametrize("aud", [1, ["pdp", 2], {"pdp": True}])
def test_aud_of_the_wrong_type_is_an_invalid_claim(tk: Any, aud: Any) -> None:
    assert refused(tk, tk.svid({"aud": aud}), InvalidClaim).claim == "aud"


# -- exp / nbf / iat ---------------------------------------------------------------

def test_jwt_svid_without_exp_is_rejected(tk: Any) -> None:
    assert refused(tk, tk.svid({"exp": tk.DROP}), InvalidClaim).claim == "exp"


@pytest.mark.parametrize("exp", ["9999999999", True, 1767272400.0, None, [1], 2**70, -1])
def test_exp_that_is_not_an_integer_is_rejected(tk: Any, exp: Any) -> None:
    # pyjwt alone accepts a numeric string; True is an int in Python.
    error = refused(tk, tk.svid({"exp": exp} if exp is not None else {"exp": tk.DROP}), InvalidClaim)
    assert error.claim == "exp"


def test_expired_jwt_svid_is_denied_with_credential_expired(tk: Any) -> None:
    refused(tk, tk.svid({"exp": tk.t - 31}), Expired)


def test_expiry_allows_the_configured_leeway_and_no_more(tk: Any) -> None:
    assert verify(tk, tk.svid({"exp": tk.t - 29, "iat": tk.t - 100})).kind == "jwt-svid"
    refused(tk, tk.svid({"exp": tk.t - 30, "iat": tk.t - 100}), Expired)
    refused(tk, tk.svid({"exp": tk.t, "iat": tk.t - 100}), Expired, svid_rules=tk.rules(leeway_s=0))


def test_leeway_cannot_exceed_sixty_seconds(tk: Any) -> None:
    with pytest.raises(ValueError):
        tk.rules(leeway_s=61)


def test_jwt_svid_not_yet_valid_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid({"nbf": tk.t + 31}), NotYetValid)
    assert verify(tk, tk.svid({"nbf": tk.t + 29})).not_before is not None


def test_jwt_svid_issued_in_the_future_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid({"iat": tk.t + 31}), NotYetValid)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
@pytest.mark.parametrize("value", ["0", False, 1.5])
def test_nbf_and_iat_must_be_integers(tk: Any, claim: str, value: Any) -> None:
    assert refused(tk, tk.svid({claim: value}), InvalidClaim).claim == claim


# -- lifetime ----------------------------------------------------------------------

def test_jwt_svid_living_longer_than_the_maximum_is_rejected(tk: Any) -> None:
    refused(tk, tk.svid({"iat": tk.t - 10, "exp": tk.t + 3600}), LifetimeExceeded)


def test_jwt_svid_over_the_maximum_is_flagged_when_configured(tk: Any) -> None:
    identity = verify(tk, tk.svid({"iat": tk.t - 10, "exp": tk.t + 7200}),
                      svid_rules=tk.rules(lifetime_policy="flag"))
    assert identity.flags == ("lifetime_exceeded",)


def test_jwt_svid_without_iat_is_measured_by_its_remaining_life(tk: Any) -> None:
    # Lifetime unknown without iat; exp - now is a lower bound of it.
    assert verify(tk, tk.svid({"iat": tk.DROP, "exp": tk.t + 3600})).issued_at is None
    refused(tk, tk.svid({"iat": tk.DROP, "exp": tk.t + 3600 + 31}), LifetimeExceeded)


# -- act (RFC 8693) ----------------------------------------------------------------

def test_act_names_the_current_actor_and_the_earlier_chain(tk: Any) -> None:
    act = {"sub": "spiffe://example.org/gateway",
           "act": {"sub": "spiffe://example.org/frontend", "act": {"sub": "user-7", "iss": "x"}}}
    identity = verify(tk, tk.svid({"act": act}))
    assert identity.actor == "spiffe://example.org/gateway"
    assert identity.chain_depth == 3
    assert identity.actor_chain == ("spiffe://example.org/frontend", "user-7")


def test_act_chain_deeper_than_three_is_rejected(tk: Any) -> None:
    act: dict[str, Any] = {"sub": "a4"}
    for name in ("a3", "a2", "a1"):
        act = {"sub": name, "act": act}
    error = refused(tk, tk.svid({"act": act}), InvalidClaim)
    assert (error.claim, error.message) == ("act", "act chain too deep")


def test_act_sub_that_looks_like_a_spiffe_id_must_parse(tk: Any) -> None:
    refused(tk, tk.svid({"act": {"sub": "spiffe://Example.org/x"}}), BadSpiffeId)


@pytest.mark.parametrize("act", ["spiffe://example.org/x", {"iss": "x"}, {"sub": 5},
                                 {"sub": "a", "iss": 1}, {"sub": "a", "act": "b"}])
def test_malformed_act_is_rejected(tk: Any, act: Any) -> None:
    assert refused(tk, tk.svid({"act": act}), InvalidClaim).claim == "act"


# -- other claims ------------------------------------------------------------------

@pytest.mark.parametrize("claims", [{"scope": 5}, {"scp": {"a": 1}}, {"scp": [1]}, {"jti": 5},
                                    {"iss": ["x"]}])
def test_claims_of_the_wrong_type_are_rejected(tk: Any, claims: dict[str, Any]) -> None:
    refused(tk, tk.svid(claims), InvalidClaim)
