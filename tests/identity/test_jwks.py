"""Plain RFC 7517 JWK Sets of OAuth issuers (the as_plain_jwks rows of bundles/expected.json)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pdp.identity.jwks import load_jwks_file, parse_jwks
from pdp.identity.trust_bundle import BundleError
from tests.conftest import SHARED_TESTDATA

SPIFFE_TESTDATA = SHARED_TESTDATA / "spiffe"
ROWS = [r for r in json.loads((SPIFFE_TESTDATA / "bundles" / "expected.json").read_text())
        if "as_plain_jwks" in r]
EC_JWK = {"kty": "EC", "crv": "P-256", "x": "ngLYQnlfF6GsojUwqtcEE3WgTNG2RUlsGhK73RNEl5k",
          "y": "tKbiDSUSsQ3F1P7wteeHNXIcU-cx6CgSbroeQrQHTLM"}


def jwks(*entries: dict[str, Any]) -> str:
    return json.dumps({"keys": list(entries)})


def test_there_are_plain_jwks_rows() -> None:
    assert len(ROWS) == 3


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_plain_jwks_vector(row: dict[str, Any]) -> None:
    expected = row["as_plain_jwks"]
    path = SPIFFE_TESTDATA / row["file"]
    if expected["expect"] == "invalid":
        with pytest.raises(BundleError, match="no kid"):
            load_jwks_file(path)
        return
    keys = load_jwks_file(path).keys
    assert len(keys) == expected["jwt_keys"]
    assert list(keys) == expected["jwt_kids"]


def test_encryption_key_is_not_a_signing_key() -> None:
    assert dict(parse_jwks(jwks({"kid": "e", "use": "enc", **EC_JWK})).keys) == {}


def test_oct_key_is_ignored() -> None:
    result = parse_jwks(jwks({"kid": "s", "kty": "oct", "k": "c2VjcmV0"}, {"kid": "a", **EC_JWK}))
    assert list(result.keys) == ["a"]
    assert result.ignored[0].index == 0


def test_signing_key_with_use_sig_is_kept() -> None:
    assert list(parse_jwks(jwks({"kid": "a", "use": "sig", **EC_JWK})).keys) == ["a"]


def test_unsupported_kty_is_skipped_not_fatal() -> None:
    okp = {"kid": "ed", "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert list(parse_jwks(jwks(okp, {"kid": "a", **EC_JWK})).keys) == ["a"]


@pytest.mark.parametrize("document", ['{}', '{"keys": 1}', '[1]', jwks({"kid": "a", **EC_JWK}, {"kid": "a", **EC_JWK}), jwks("x")])  # type: ignore[arg-type]
def test_malformed_jwks_is_refused(document: str) -> None:
    with pytest.raises(BundleError):
        parse_jwks(document)
