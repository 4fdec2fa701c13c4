"""The development JWT-SVID issuer: key file, bundle, minted tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from pdp.identity.claims import JwtRules
from pdp.identity.dev_issuer import DevIssuer
from pdp.identity.jwt_svid import verify_jwt_svid
from pdp.identity.trust_bundle import load_bundle_file, parse_spiffe_bundle


def test_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = DevIssuer.load_or_create(tmp_path)
    path = tmp_path / "dev" / "jwt-svid-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DevIssuer.load_or_create(tmp_path).kid == first.kid


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    DevIssuer.load_or_create(tmp_path)
    (tmp_path / "dev" / "jwt-svid-key.pem").chmod(0o644)
    with pytest.raises(PermissionError):
        DevIssuer.load_or_create(tmp_path)


def test_kid_is_the_rfc7638_thumbprint(tmp_path: Path) -> None:
    dev = DevIssuer.load_or_create(tmp_path)
    jwk = dev.public_jwk
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")},
                           separators=(",", ":"), sort_keys=True)
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=")
    assert dev.kid == expected.decode()


def test_bundle_is_a_spiffe_bundle_with_the_dev_key(tmp_path: Path) -> None:
    dev = DevIssuer.load_or_create(tmp_path)
    bundle = parse_spiffe_bundle(dev.bundle_json(), "example.org")
    assert list(bundle.jwt_keys) == [dev.kid] and bundle.sequence == 1
    dev.write_bundle(tmp_path / "bundle.json")
    assert list(load_bundle_file(tmp_path / "bundle.json", "example.org").jwt_keys) == [dev.kid]


def test_minted_token_is_a_verifiable_jwt_svid(tmp_path: Path, tk: Any) -> None:
    dev = DevIssuer.load_or_create(tmp_path)
    token = dev.mint("spiffe://example.org/billing", scopes=["a", "b"], now=tk.now,
                     extra_claims={"tenant": "t1"})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": dev.kid, "typ": "JWT"}
    bundle = parse_spiffe_bundle(dev.bundle_json(), "example.org")
    identity = verify_jwt_svid(token, bundles={"example.org": bundle},
                               rules={"example.org": JwtRules(audiences=frozenset({"pdp"}))},
                               now=tk.now + timedelta(seconds=10))
    assert identity.principal_id == "spiffe://example.org/billing"
    assert identity.scopes == {"a", "b"}
    assert identity.expires_at == tk.now + timedelta(seconds=300)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tenant"] == "t1" and len(claims["jti"]) == 36


@pytest.mark.parametrize("spiffe_id", ["spiffe://other.org/x", "spiffe://Example.org/x", "x",
                                       "spiffe://example.org/x/"])
def test_mint_only_for_valid_example_org_ids(tmp_path: Path, spiffe_id: str) -> None:
    dev = DevIssuer.load_or_create(tmp_path)
    with pytest.raises(ValueError):
        dev.mint(spiffe_id)


def test_mint_refuses_a_non_positive_ttl(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DevIssuer.load_or_create(tmp_path).mint("spiffe://example.org/x", ttl_s=0)
