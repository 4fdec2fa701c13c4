"""OAuth JWT access tokens: one hostile token per rule of IDENTITY.md "OAuth JWT access tokens"."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.identity.errors import (
    BadSpiffeId,
    DisallowedAlgorithm,
    ForbiddenHeader,
    IdentityError,
    InvalidClaim,
    LifetimeExceeded,
    UnknownKey,
    UntrustedIssuer,
    WrongAudience,
    WrongTokenType,
)
from pdp.identity.model import BearerToken, VerifiedIdentity
from pdp.identity.oauth_jwt import verify_oauth_jwt


def verify(tk: Any, token: str, **issuer_options: Any) -> VerifiedIdentity:
    return tk.verifier(issuers=[tk.idp(**issuer_options)]).verify(BearerToken(token), tk.now)


def refused(tk: Any, token: str, error: type[IdentityError], **issuer_options: Any) -> IdentityError:
    with pytest.raises(error) as e:
        verify(tk, token, **issuer_options)
    return e.value


def test_valid_access_token_yields_its_subject(tk: Any) -> None:
    identity = verify(tk, tk.access_token({"groups": ["finance", "ops"]}), groups_claim="groups")
    assert identity.kind == "jwt"
    assert identity.principal_id == "user-42"
    assert identity.issuer == tk.IDP
    assert (identity.trust_domain, identity.path) == ("", "")
    assert identity.scopes == {"invoices:read", "invoices:write"}
    assert identity.groups == {"finance", "ops"}
    assert identity.jti == "at-1"


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_access_token_typ_is_compared_case_insensitively(tk: Any, typ: str) -> None:
    assert verify(tk, tk.access_token(header={"typ": typ})).kind == "jwt"


@pytest.mark.parametrize("typ", [None, "JWT", "JOSE", "at+jwt+x", 5])
def test_at_jwt_issuer_refuses_a_token_not_typed_at_jwt(tk: Any, typ: Any) -> None:
    token = tk.access_token(header={"typ": typ if typ is not None else tk.DROP})
    refused(tk, token, WrongTokenType)


def test_jwt_svid_typed_token_is_never_accepted_for_an_at_jwt_issuer(tk: Any) -> None:
    token = tk.access_token({"sub": "spiffe://example.org/api"}, header={"typ": "JWT"})
    refused(tk, token, WrongTokenType)


def test_at_jwt_is_refused_by_an_issuer_configured_for_plain_jwt(tk: Any) -> None:
    refused(tk, tk.access_token(), WrongTokenType, token_type="jwt")


def test_plain_jwt_issuer_accepts_typ_jwt(tk: Any) -> None:
    assert verify(tk, tk.access_token(header={"typ": "JWT"}), token_type="jwt").kind == "jwt"


def test_at_jwt_from_an_unconfigured_issuer_is_untrusted_even_with_a_spiffe_sub(tk: Any) -> None:
    token = tk.access_token({"iss": "https://evil.example", "sub": "spiffe://example.org/api"})
    refused(tk, token, UntrustedIssuer)


def test_token_of_no_known_kind_is_untrusted(tk: Any) -> None:
    refused(tk, tk.access_token({"iss": "https://evil.example"}, header={"typ": "JWT"}),
            UntrustedIssuer)


def test_issuer_must_match_exactly(tk: Any) -> None:
    refused(tk, tk.access_token({"iss": tk.IDP + "/"}), UntrustedIssuer)
    refused(tk, tk.access_token({"iss": "https://IDP.example.com"}), UntrustedIssuer)
    with pytest.raises(UntrustedIssuer):
        verify_oauth_jwt(tk.access_token({"iss": tk.IDP + "/"}), issuer=tk.idp(), now=tk.now)


def test_trailing_slash_is_tolerated_only_when_configured(tk: Any) -> None:
    token = tk.access_token({"iss": tk.IDP + "/"})
    assert verify(tk, token, allow_trailing_slash=True).issuer == tk.IDP + "/"
    refused(tk, tk.access_token({"iss": tk.IDP + "//"}), UntrustedIssuer, allow_trailing_slash=True)


@pytest.mark.parametrize("claim", ["client_id", "jti", "iat", "sub", "exp"])
def test_rfc9068_required_claims_are_enforced(tk: Any, claim: str) -> None:
    assert refused(tk, tk.access_token({claim: tk.DROP}), InvalidClaim).claim == claim


def test_access_token_without_aud_is_rejected(tk: Any) -> None:
    refused(tk, tk.access_token({"aud": tk.DROP}), WrongAudience)


def test_configured_required_claims_are_enforced(tk: Any) -> None:
    required = frozenset({"iss", "exp", "aud", "sub", "iat", "email"})
    error = refused(tk, tk.access_token(), InvalidClaim, required_claims=required)
    assert error.claim == "email"


@pytest.mark.parametrize("claim,value", [("client_id", 5), ("jti", ""), ("sub", ["a"])])
def test_string_claims_of_the_wrong_type_are_rejected(tk: Any, claim: str, value: Any) -> None:
    refused(tk, tk.access_token({claim: value}), InvalidClaim)


def test_access_token_longer_than_the_issuer_maximum_is_rejected(tk: Any) -> None:
    token = tk.access_token({"iat": tk.t - 10, "exp": tk.t + 600})
    refused(tk, token, LifetimeExceeded, rules=tk.rules(max_lifetime_s=300))


def test_access_token_over_the_maximum_is_flagged_when_configured(tk: Any) -> None:
    token = tk.access_token({"iat": tk.t - 10, "exp": tk.t + 86400})
    identity = verify(tk, token, rules=tk.rules(lifetime_policy="flag"))
    assert identity.flags == ("lifetime_exceeded",)


def test_issuer_keys_never_include_spiffe_bundle_keys(tk: Any) -> None:
    token = tk.access_token(header={"alg": "ES256", "kid": tk.SVID_KID}, key=tk.ec256)
    refused(tk, token, UnknownKey)


def test_issuer_algorithm_allow_list_is_enforced(tk: Any) -> None:
    refused(tk, tk.access_token(), DisallowedAlgorithm, rules=tk.rules(algorithms=frozenset({"PS256"})))


def test_access_token_with_a_jwk_header_is_rejected(tk: Any) -> None:
    refused(tk, tk.access_token(header={"jwk": {"kty": "RSA"}}), ForbiddenHeader)


def test_issuer_audiences_replace_the_pdp_audience(tk: Any) -> None:
    rules = tk.rules(audiences=frozenset({"api://pdp"}))
    refused(tk, tk.access_token(), WrongAudience, rules=rules)
    assert verify(tk, tk.access_token({"aud": "api://pdp"}), rules=rules).kind == "jwt"


def test_principal_comes_from_the_configured_claim(tk: Any) -> None:
    assert verify(tk, tk.access_token(), principal_claim="client_id").principal_id == "billing-app"
    error = refused(tk, tk.access_token({"azp": ""}), InvalidClaim, principal_claim="azp")
    assert error.claim == "azp"


def test_spiffe_sub_is_the_principal_of_an_access_token(tk: Any) -> None:
    identity = verify(tk, tk.access_token({"sub": "spiffe://example.org/api"}),
                      principal_claim="client_id")
    assert identity.principal_id == "spiffe://example.org/api"
    assert (identity.trust_domain, identity.path) == ("example.org", "/api")


def test_malformed_spiffe_sub_is_never_an_opaque_name(tk: Any) -> None:
    refused(tk, tk.access_token({"sub": "spiffe://EXAMPLE.org/api"}), BadSpiffeId)


def test_scp_list_is_read_as_scopes(tk: Any) -> None:
    identity = verify(tk, tk.access_token({"scope": tk.DROP, "scp": ["a", "b"]}))
    assert identity.scopes == {"a", "b"}


def test_groups_must_be_a_list_of_strings(tk: Any) -> None:
    refused(tk, tk.access_token({"groups": "admins"}), InvalidClaim, groups_claim="groups")


def test_token_exchange_actor_is_recorded(tk: Any) -> None:
    token = tk.access_token({"act": {"sub": "spiffe://example.org/gateway"}})
    identity = verify(tk, token)
    assert (identity.actor, identity.chain_depth, identity.actor_chain) == (
        "spiffe://example.org/gateway", 1, ())
