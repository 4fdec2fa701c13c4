"""Fuzzing: whatever arrives, verification raises an IdentityError and nothing else, and
garbage never verifies; a validly signed token verifies only with claims that bind it to us
now; and a valid token changed in any way never verifies."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.identity.errors import IdentityError
from pdp.identity.jwks import parse_jwks
from pdp.identity.model import BearerToken, X509Chain
from pdp.identity.trust_bundle import BundleError, parse_spiffe_bundle
from tests.conftest import examples

FUZZ = settings(max_examples=examples(150), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=8), children, max_size=4),
    max_leaves=12)
claim_names = st.sampled_from(["sub", "aud", "exp", "nbf", "iat", "iss", "jti", "act", "scope",
                               "scp", "client_id", "groups"])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def only_identity_errors(verify: Any, credential: Any, now: Any) -> Any:
    """What ``verify`` returns, or None for an ``IdentityError``; anything else propagates."""
    try:
        return verify(credential, now)
    except IdentityError:
        return None


def refused(verify: Any, credential: Any, now: Any) -> bool:
    """Garbage never verifies: only an ``IdentityError`` is an acceptable outcome."""
    return only_identity_errors(verify, credential, now) is None


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_as_a_token_raises_only_identity_errors(tk: Any, text: str) -> None:
    assert refused(tk.verifier().verify, BearerToken(text), tk.now)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_a_token_raise_only_identity_errors(tk: Any, data: bytes) -> None:
    verifier = tk.verifier()
    assert refused(verifier.verify, BearerToken(data.decode("latin-1")), tk.now)
    assert refused(verifier.verify, BearerToken(b64url(data)), tk.now)
    parts = data.split(b".") + [b"", b""]
    dotted = ".".join(b64url(p) for p in parts[:3])
    assert refused(verifier.verify, BearerToken(dotted), tk.now)


@FUZZ
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5), json_values)
def test_arbitrary_json_segments_raise_only_identity_errors(tk: Any, header: dict[str, Any],
                                                            payload: Any) -> None:
    token = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.AAAA"
    assert refused(tk.verifier().verify, BearerToken(token), tk.now)  # no valid signature


@FUZZ
@given(st.dictionaries(claim_names, json_values, max_size=6),
       st.sampled_from(["svid", "access_token"]))
def test_validly_signed_tokens_with_arbitrary_claims_raise_only_identity_errors(
        tk: Any, claims: dict[str, Any], kind: str) -> None:
    token = getattr(tk, kind)(claims)
    identity = only_identity_errors(tk.verifier().verify, BearerToken(token), tk.now)
    if identity is None:
        return
    # Signed by a trusted key, it may verify, but only with claims that bind it to us now,
    # checked here from the claims alone.
    final = {**(tk.svid_claims() if kind == "svid" else tk.access_claims()), **claims}
    assert final["aud"] == "pdp" or final["aud"] == ["pdp"]
    assert type(final["exp"]) is int and tk.t < final["exp"] + 30  # the default leeway
    for claim in ("nbf", "iat"):  # optional: absent (or null) is no claim
        assert final.get(claim) is None or (
            type(final[claim]) is int and final[claim] <= tk.t + 30)
    assert identity.principal_id == final["sub"]
    if kind == "access_token":
        assert final["iss"] == tk.IDP


@FUZZ
@given(st.data())
def test_a_valid_token_with_one_character_changed_never_verifies(tk: Any, data: Any) -> None:
    token = data.draw(st.sampled_from([tk.svid(), tk.access_token()]))
    verifier = tk.verifier(cache_size=0)
    assert verifier.verify(BearerToken(token), tk.now)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(B64URL + ".=+/ ~\u00e9").filter(
        lambda c: c != token[index]))
    mangled = token[:index] + replacement + token[index + 1:]
    assert refused(verifier.verify, BearerToken(mangled), tk.now)


@FUZZ
@given(st.data())
def test_a_valid_token_truncated_or_extended_never_verifies(tk: Any, data: Any) -> None:
    token = tk.svid()
    cut = data.draw(st.integers(0, len(token) - 1))
    suffix = data.draw(st.text(B64URL + ".", min_size=1, max_size=4))
    verifier = tk.verifier(cache_size=0)
    for mangled in (token[:cut], token + suffix, suffix + token):
        assert refused(verifier.verify, BearerToken(mangled), tk.now)


@FUZZ
@given(st.permutations([0, 1, 2]).filter(lambda p: p != [0, 1, 2]))
def test_a_valid_token_with_swapped_segments_never_verifies(tk: Any, order: list[int]) -> None:
    segments = tk.svid().split(".")
    mangled = ".".join(segments[i] for i in order)
    assert refused(tk.verifier().verify, BearerToken(mangled), tk.now)


@FUZZ
@given(st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jku", "crit", "x5c", "b64"]),
                       json_values, min_size=1, max_size=3))
def test_a_valid_token_with_an_altered_header_never_verifies(tk: Any, changes: dict[str, Any]) -> None:
    head, body, sig = tk.svid().split(".")
    header = {**json.loads(base64.urlsafe_b64decode(head + "==")), **changes}
    new_head = b64url(json.dumps(header).encode())
    if new_head == head:
        return
    mangled = f"{new_head}.{body}.{sig}"
    assert refused(tk.verifier().verify, BearerToken(mangled), tk.now)


@FUZZ
@given(st.dictionaries(claim_names, json_values, min_size=1, max_size=3))
def test_a_valid_token_with_altered_claims_never_verifies(tk: Any, changes: dict[str, Any]) -> None:
    head, body, sig = tk.svid().split(".")
    claims = {**json.loads(base64.urlsafe_b64decode(body + "==")), **changes}
    new_body = b64url(json.dumps(claims).encode())
    if new_body == body:
        return
    assert refused(tk.verifier().verify, BearerToken(f"{head}.{new_body}.{sig}"), tk.now)


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text_as_a_pem_chain_raises_only_identity_errors(tk: Any, text: str) -> None:
    assert refused(tk.verifier().verify, X509Chain(text), tk.now)


@FUZZ
@given(st.binary(min_size=1, max_size=300))
def test_garbage_inside_a_certificate_block_raises_only_identity_errors(tk: Any, der: bytes) -> None:
    body = base64.b64encode(der).decode()
    pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    assert refused(tk.verifier().verify, X509Chain(pem), tk.now)


jwk_entries = st.fixed_dictionaries({}, optional={
    "use": st.sampled_from(["jwt-svid", "x509-svid", "enc", "sig"]) | json_values,
    "kid": st.text(max_size=5) | json_values,
    "kty": st.sampled_from(["EC", "RSA", "oct", "OKP"]) | json_values,
    "crv": st.sampled_from(["P-256", "P-384", "P-521", "secp256k1"]) | json_values,
    "x": st.text(B64URL, max_size=90) | json_values,
    "y": st.text(B64URL, max_size=90) | json_values,
    "n": st.text(B64URL, max_size=50) | json_values,
    "e": st.sampled_from(["AQAB", "Aw", ""]) | json_values,
    "alg": st.sampled_from(["ES256", "RS256", "HS256", "none"]) | json_values,
    "x5c": st.lists(st.text(max_size=40) | json_values, max_size=2) | json_values,
    "d": st.text(B64URL, max_size=10),
})


@FUZZ
@given(st.lists(jwk_entries, max_size=4), st.dictionaries(
    st.sampled_from(["spiffe_sequence", "spiffe_refresh_hint", "other"]), json_values, max_size=2))
def test_arbitrary_key_sets_raise_only_bundle_errors(entries: list[Any], members: dict[str, Any]) -> None:
    document = json.dumps({"keys": entries, **members})
    try:
        bundle = parse_spiffe_bundle(document, "example.org")
        assert all(key.kid for key in bundle.jwt_keys.values())
    except BundleError:
        pass
    try:
        parse_jwks(document)
    except BundleError:
        pass


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_documents_raise_only_bundle_errors(document: str | bytes) -> None:
    for parse in (lambda d: parse_spiffe_bundle(d, "example.org"), parse_jwks):
        try:
            parse(document)
        except BundleError:
            pass
