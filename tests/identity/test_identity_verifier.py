"""IdentityVerifier: settings, routing, the verification cache, bundle refresh and revocation."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

import pdp.identity.jose as jose
from pdp.config import IssuerConfig, Settings, TrustDomainConfig
from pdp.identity.dev_issuer import DevIssuer
from pdp.identity.errors import (
    Expired,
    MalformedCredential,
    MissingCredential,
    NotYetValid,
    Revoked,
    UnknownKey,
    UntrustedIssuer,
    WrongAudience,
)
from pdp.identity.model import BearerToken, X509Chain
from pdp.identity.revocation import DenyList
from pdp.identity.trust_bundle import BundleError
from pdp.identity.trust_store import TrustStore
from pdp.identity.verifier import IdentityVerifier


def jwk(private: Any, kid: str, use: str | None = "jwt-svid") -> dict[str, Any]:
    algorithm = ECAlgorithm if hasattr(private, "curve") else RSAAlgorithm
    entry = algorithm.to_jwk(private.public_key(), as_dict=True)
    return {**({"use": use} if use else {}), "kid": kid, **entry}


def write_bundle(path: Path, *entries: dict[str, Any], sequence: int | None = None,
                 hint: int | None = None) -> Path:
    document: dict[str, Any] = {"keys": list(entries)}
    if sequence is not None:
        document["spiffe_sequence"] = sequence
    if hint is not None:
        document["spiffe_refresh_hint"] = hint
    path.write_text(json.dumps(document))
    return path


def settings_for(tmp_path: Path, tk: Any, **overrides: Any) -> Settings:
    bundle = write_bundle(tmp_path / "example.org.json", jwk(tk.ec256, tk.SVID_KID), sequence=1,
                          hint=60)
    idp_jwks = write_bundle(tmp_path / "idp.json", jwk(tk.idp_key, tk.IDP_KID, use=None))
    return Settings(
        state_dir=tmp_path / "state",
        trust_domains=[TrustDomainConfig(name="example.org", bundle_file=bundle)],
        issuers=[IssuerConfig(name="corp-idp", issuer=tk.IDP, jwks_file=idp_jwks,
                              token_type="at+jwt")],
        **overrides,
    )


# -- building from settings ----------------------------------------------------------

def test_from_settings_verifies_svids_and_access_tokens(tmp_path: Path, tk: Any) -> None:
    verifier = IdentityVerifier.from_settings(settings_for(tmp_path, tk))
    assert verifier.verify(BearerToken(tk.svid()), tk.now).kind == "jwt-svid"
    assert verifier.verify(BearerToken(tk.access_token()), tk.now).kind == "jwt"


def test_from_settings_refuses_an_invalid_bundle_file(tmp_path: Path, tk: Any) -> None:
    settings = settings_for(tmp_path, tk)
    (tmp_path / "example.org.json").write_text('{"spiffe_sequence": 1}')
    with pytest.raises(BundleError):
        IdentityVerifier.from_settings(settings)


def test_from_settings_refuses_hs256_in_the_allow_list(tmp_path: Path, tk: Any) -> None:
    settings = settings_for(tmp_path, tk)
    settings.trust_domains[0].algorithms = ["ES256", "HS256"]
    with pytest.raises(ValueError, match="HS256"):
        IdentityVerifier.from_settings(settings)


def test_from_settings_refuses_a_trust_domain_configured_twice(tmp_path: Path, tk: Any) -> None:
    settings = settings_for(tmp_path, tk)
    settings.trust_domains.append(settings.trust_domains[0])
    with pytest.raises(ValueError, match="twice"):
        IdentityVerifier.from_settings(settings)


def test_settings_audience_and_leeway_apply(tmp_path: Path, tk: Any) -> None:
    verifier = IdentityVerifier.from_settings(
        settings_for(tmp_path, tk, audience="spiffe://example.org/pdp", leeway_s=0))
    with pytest.raises(WrongAudience):
        verifier.verify(BearerToken(tk.svid()), tk.now)
    token = tk.svid({"aud": "spiffe://example.org/pdp", "exp": tk.t, "iat": tk.t - 60})
    with pytest.raises(Expired):
        verifier.verify(BearerToken(token), tk.now)


def test_dev_issuer_key_is_trusted_beside_the_configured_bundle(tmp_path: Path, tk: Any) -> None:
    dev = DevIssuer.load_or_create(tmp_path / "state")
    verifier = IdentityVerifier.from_settings(settings_for(tmp_path, tk), dev_issuer=dev)
    dev_token = dev.mint("spiffe://example.org/dev-workload", now=tk.now)
    assert verifier.verify(BearerToken(dev_token), tk.now).principal_id == \
        "spiffe://example.org/dev-workload"
    assert verifier.verify(BearerToken(tk.svid()), tk.now).kind == "jwt-svid"


def test_dev_issuer_alone_trusts_example_org(tmp_path: Path, tk: Any) -> None:
    dev = DevIssuer.load_or_create(tmp_path / "state")
    verifier = IdentityVerifier.from_settings(Settings(state_dir=tmp_path), dev_issuer=dev)
    token = dev.mint("spiffe://example.org/w", now=tk.now, scopes=["read"])
    assert verifier.verify(BearerToken(token), tk.now).scopes == {"read"}
    with pytest.raises(UnknownKey):
        verifier.verify(BearerToken(tk.svid()), tk.now)


# -- the way in ----------------------------------------------------------------------

@pytest.mark.parametrize("credential", [BearerToken(""), BearerToken("  "), X509Chain("")])
def test_empty_credential_is_missing(tk: Any, credential: Any) -> None:
    with pytest.raises(MissingCredential):
        tk.verifier().verify(credential, tk.now)


def test_unknown_credential_type_is_malformed(tk: Any) -> None:
    with pytest.raises(MalformedCredential):
        tk.verifier().verify("a token", tk.now)  # type: ignore[arg-type]


def test_naive_time_is_a_programming_error(tk: Any) -> None:
    with pytest.raises(ValueError):
        tk.verifier().verify(BearerToken(tk.svid()), tk.now.replace(tzinfo=None))


def test_x509_chain_is_routed_to_x509_verification(tk: Any, xk: Any) -> None:
    verifier = IdentityVerifier(store=TrustStore(bundles={"example.org": xk.bundle()}),
                                svid_rules={})
    identity = verifier.verify(X509Chain(xk.chain_pem(xk.leaf())), xk.now)
    assert identity.kind == "x509-svid"


def test_jwt_svid_of_a_domain_with_a_bundle_but_no_rules_is_untrusted(tk: Any) -> None:
    verifier = IdentityVerifier(store=TrustStore(bundles=tk.bundles()), svid_rules={})
    with pytest.raises(UntrustedIssuer):
        verifier.verify(BearerToken(tk.svid()), tk.now)


# -- the cache -----------------------------------------------------------------------

@pytest.fixture
def count_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = jose.verify_signature

    def counting(*args: Any) -> bool:
        calls.append(1)
        return real(*args)
    monkeypatch.setattr(jose, "verify_signature", counting)
    return calls


def test_cache_hit_skips_the_signature_check(tk: Any, count_signature_checks: list[int]) -> None:
    verifier = tk.verifier()
    token = BearerToken(tk.svid())
    first = verifier.verify(token, tk.now)
    assert verifier.verify(token, tk.now + timedelta(seconds=5)) == first
    assert len(count_signature_checks) == 1


def test_cache_hit_still_checks_expiry(tk: Any) -> None:
    verifier = tk.verifier()
    token = BearerToken(tk.svid({"exp": tk.t + 60}))
    verifier.verify(token, tk.now)
    with pytest.raises(Expired):
        verifier.verify(token, tk.now + timedelta(seconds=90))
    with pytest.raises(NotYetValid):
        verifier.verify(token, tk.now - timedelta(seconds=60))


def test_cache_hit_still_checks_certificate_validity(xk: Any) -> None:
    verifier = IdentityVerifier(store=TrustStore(bundles={"example.org": xk.bundle()}),
                                svid_rules={})
    chain = X509Chain(xk.chain_pem(xk.leaf()))
    verifier.verify(chain, xk.now)
    with pytest.raises(Expired):
        verifier.verify(chain, xk.now + timedelta(hours=2))


def test_cache_is_bounded(tk: Any) -> None:
    verifier = tk.verifier(cache_size=2)
    for n in range(3):
        verifier.verify(BearerToken(tk.svid({"jti": f"j{n}"})), tk.now)
    assert len(verifier.cache) == 2


def test_failures_are_not_cached(tk: Any) -> None:
    verifier = tk.verifier()
    with pytest.raises(UnknownKey):
        verifier.verify(BearerToken(tk.svid(header={"kid": "x"})), tk.now)
    assert len(verifier.cache) == 0


# -- refresh -------------------------------------------------------------------------

def refreshing_verifier(tmp_path: Path, tk: Any) -> tuple[IdentityVerifier, Path]:
    path = write_bundle(tmp_path / "b.json", jwk(tk.ec256, tk.SVID_KID), sequence=2, hint=60)
    store = TrustStore.from_files(bundle_files={"example.org": path})
    verifier = IdentityVerifier(store=store, svid_rules={"example.org": tk.rules()})
    verifier.refresh(tk.now)  # schedules the first reload at now + 60 s
    return verifier, path


def test_unknown_kid_never_triggers_a_refetch(tmp_path: Path, tk: Any) -> None:
    verifier, path = refreshing_verifier(tmp_path, tk)
    write_bundle(path, jwk(tk.ec256, tk.SVID_KID), jwk(tk.other, "new-kid"), sequence=3)
    token = BearerToken(tk.svid(header={"kid": "new-kid"}, key=tk.other))
    with pytest.raises(UnknownKey):
        verifier.verify(token, tk.now)
    assert verifier.refresh(tk.now + timedelta(seconds=30)) == []  # not due yet
    with pytest.raises(UnknownKey):
        verifier.verify(token, tk.now + timedelta(seconds=30))
    assert verifier.refresh(tk.now + timedelta(seconds=60)) == []
    assert verifier.verify(token, tk.now + timedelta(seconds=60)).kind == "jwt-svid"


def test_failed_refresh_keeps_the_last_good_bundle(tmp_path: Path, tk: Any) -> None:
    verifier, path = refreshing_verifier(tmp_path, tk)
    path.write_text("{not json")
    errors = verifier.refresh(tk.now + timedelta(seconds=60))
    assert len(errors) == 1 and "last good" in errors[0]
    assert verifier.verify(BearerToken(tk.svid()), tk.now + timedelta(seconds=60)).kind == "jwt-svid"


def test_refresh_refuses_a_lower_sequence(tmp_path: Path, tk: Any) -> None:
    verifier, path = refreshing_verifier(tmp_path, tk)
    write_bundle(path, sequence=1)  # would revoke every key, but it is older
    errors = verifier.refresh(tk.now + timedelta(seconds=60))
    assert errors and "sequence" in errors[0]
    assert verifier.verify(BearerToken(tk.svid()), tk.now + timedelta(seconds=60)).kind == "jwt-svid"


def test_refresh_that_removes_a_key_drops_cached_verifications(tmp_path: Path, tk: Any) -> None:
    verifier, path = refreshing_verifier(tmp_path, tk)
    token = BearerToken(tk.svid())
    verifier.verify(token, tk.now)
    write_bundle(path, sequence=3)  # every key revoked
    assert verifier.refresh(tk.now + timedelta(seconds=60)) == []
    with pytest.raises(UnknownKey):
        verifier.verify(token, tk.now + timedelta(seconds=61))


def test_refresh_reloads_issuer_jwks(tmp_path: Path, tk: Any) -> None:
    verifier = IdentityVerifier.from_settings(settings_for(tmp_path, tk))
    verifier.refresh(tk.now)
    write_bundle(tmp_path / "idp.json")  # the IdP rotated its key out
    later = tk.now + timedelta(seconds=300)
    assert verifier.refresh(later) == []
    with pytest.raises(UnknownKey):
        verifier.verify(BearerToken(tk.access_token({"exp": tk.t + 600, "iat": tk.t + 299})), later)


# -- revocation ----------------------------------------------------------------------

def test_revoked_spiffe_id_is_refused_even_from_the_cache(tk: Any) -> None:
    deny = DenyList()
    verifier = tk.verifier(deny_list=deny)
    token = BearerToken(tk.svid())
    verifier.verify(token, tk.now)
    deny.revoke_spiffe_id("spiffe://example.org/ns/prod/sa/api")
    with pytest.raises(Revoked):
        verifier.verify(token, tk.now)


def test_revoked_actor_is_refused(tk: Any) -> None:
    deny = DenyList()
    deny.revoke_spiffe_id("spiffe://example.org/gateway")
    token = BearerToken(tk.svid({"act": {"sub": "spiffe://example.org/gateway"}}))
    with pytest.raises(Revoked):
        tk.verifier(deny_list=deny).verify(token, tk.now)


def test_revoked_certificate_is_refused(xk: Any) -> None:
    deny = DenyList()
    verifier = IdentityVerifier(store=TrustStore(bundles={"example.org": xk.bundle()}),
                                svid_rules={}, deny_list=deny)
    leaf = xk.leaf(xk.Spec(serial=0xABC))
    chain = X509Chain(xk.chain_pem(leaf))
    verifier.verify(chain, xk.now)
    deny.revoke_certificate(leaf.cert.issuer.rfc4514_string(), "0A:BC")
    with pytest.raises(Revoked):
        verifier.verify(chain, xk.now)


def test_revoked_credential_hash_is_refused(tk: Any) -> None:
    deny = DenyList()
    verifier = tk.verifier(deny_list=deny)
    token = BearerToken(tk.svid())
    deny.revoke_credential(verifier.verify(token, tk.now).credential_sha256)
    with pytest.raises(Revoked):
        verifier.verify(token, tk.now)
