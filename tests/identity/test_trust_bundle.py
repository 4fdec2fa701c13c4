"""SPIFFE bundle parsing against testdata/spiffe/bundles/expected.json, plus the bundle rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from pdp.identity.trust_bundle import (
    DEFAULT_REFRESH_S,
    BundleError,
    TrustBundle,
    check_successor,
    load_bundle_file,
    parse_spiffe_bundle,
)
from tests.conftest import SHARED_TESTDATA

SPIFFE_TESTDATA = SHARED_TESTDATA / "spiffe"
ROWS: list[dict[str, Any]] = json.loads((SPIFFE_TESTDATA / "bundles" / "expected.json").read_text())

EC_JWK = {  # the jwt-svid key of spiffebundle_valid_1.json
    "kty": "EC", "crv": "P-256",
    "x": "ngLYQnlfF6GsojUwqtcEE3WgTNG2RUlsGhK73RNEl5k",
    "y": "tKbiDSUSsQ3F1P7wteeHNXIcU-cx6CgSbroeQrQHTLM",
}


def bundle_of(*entries: dict[str, Any], **members: Any) -> TrustBundle:
    return parse_spiffe_bundle(json.dumps({"keys": list(entries), **members}), "example.org")


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_bundle_vector(row: dict[str, Any]) -> None:
    path = SPIFFE_TESTDATA / row["file"]
    if row["expect"] == "invalid":
        with pytest.raises(BundleError) as e:
            load_bundle_file(path, "example.org")
        assert e.value.reason == "bundle-invalid"
        return
    bundle = load_bundle_file(path, "example.org")
    assert len(bundle.x509_authorities) == row["x509_authorities"]
    assert len(bundle.jwt_keys) == row["jwt_keys"]
    assert list(bundle.jwt_keys) == row["jwt_kids"]
    assert bundle.sequence == row["sequence"]
    assert bundle.refresh_hint == row["refresh_hint"]
    assert [hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest()
            for c in bundle.x509_authorities] == row["x509_sha256"]
    assert [i.index for i in bundle.ignored] == [i["index"] for i in row["ignored"]]


def test_wit_svid_keys_never_become_jwt_svid_keys() -> None:
    bundle = load_bundle_file(SPIFFE_TESTDATA / "bundles/spiffebundle_valid_with_wit.json",
                              "example.org")
    assert "uNhqAaPI7NDn7IHOsa2ac1BF4O5qGxjZ" not in bundle.jwt_keys
    assert "y3UHKFp0WqPpG7gVr3FKieiEzwH8fTMm" not in bundle.jwt_keys


def test_empty_keys_array_is_a_valid_bundle_with_no_authorities() -> None:
    bundle = bundle_of()
    assert bundle.x509_authorities == () and dict(bundle.jwt_keys) == {}


@pytest.mark.parametrize("document", [
    "", "[]", "null", '{"keys": {}}', '{"keys": "x"}', "{'keys': []}", '{"keys": [], "keys": []}',
    '{"keys": [], "spiffe_sequence": "1"}', '{"keys": [], "spiffe_sequence": true}',
    '{"keys": [], "spiffe_refresh_hint": -5}', '{"keys": [], "spiffe_refresh_hint": 1.5}',
    '{"keys": [NaN]}',
])
def test_malformed_bundle_is_refused(document: str) -> None:
    with pytest.raises(BundleError):
        parse_spiffe_bundle(document, "example.org")


def test_unknown_top_level_members_are_allowed() -> None:
    assert bundle_of(spiffe_extension={"a": 1}).jwt_keys == {}


def test_jwt_svid_entry_without_kid_is_dropped_never_used() -> None:
    bundle = bundle_of({"use": "jwt-svid", **EC_JWK})
    assert dict(bundle.jwt_keys) == {}
    assert bundle.ignored[0].why == "jwt-svid entry without kid"


def test_entry_with_unknown_or_missing_use_is_ignored() -> None:
    bundle = bundle_of({"kid": "a", **EC_JWK}, {"use": "sig", "kid": "b", **EC_JWK},
                       {"use": "JWT-SVID", "kid": "c", **EC_JWK})
    assert dict(bundle.jwt_keys) == {}
    assert [i.index for i in bundle.ignored] == [0, 1, 2]


def test_oct_key_is_ignored_even_as_jwt_svid() -> None:
    bundle = bundle_of({"use": "jwt-svid", "kid": "s", "kty": "oct", "k": "c2VjcmV0"})
    assert dict(bundle.jwt_keys) == {}
    assert "oct" in bundle.ignored[0].why


def test_jwt_svid_entry_with_private_key_members_is_ignored() -> None:
    bundle = bundle_of({"use": "jwt-svid", "kid": "p", **EC_JWK, "d": "AAAA"})
    assert dict(bundle.jwt_keys) == {}


def test_jwt_svid_entry_with_bad_coordinates_is_ignored() -> None:
    bundle = bundle_of({"use": "jwt-svid", "kid": "bad", **EC_JWK, "x": "AAAA"},
                       {"use": "jwt-svid", "kid": "num", **EC_JWK, "y": 5})
    assert dict(bundle.jwt_keys) == {}
    assert len(bundle.ignored) == 2


def test_jwt_svid_entry_with_unsupported_curve_is_ignored() -> None:
    bundle = bundle_of({"use": "jwt-svid", "kid": "k1", **EC_JWK, "crv": "secp256k1"})
    assert dict(bundle.jwt_keys) == {}


def test_two_jwt_svid_keys_with_one_kid_make_the_bundle_invalid() -> None:
    with pytest.raises(BundleError, match="duplicate"):
        bundle_of({"use": "jwt-svid", "kid": "a", **EC_JWK}, {"use": "jwt-svid", "kid": "a", **EC_JWK})


def test_x509_svid_entry_with_garbage_x5c_is_ignored() -> None:
    bundle = bundle_of({"use": "x509-svid", "x5c": ["not base64!"]},
                       {"use": "x509-svid", "x5c": ["Q09SUlVQVA=="]},
                       {"use": "x509-svid", "x5c": []}, {"use": "x509-svid"})
    assert bundle.x509_authorities == ()
    assert [i.index for i in bundle.ignored] == [0, 1, 2, 3]


def test_jwt_key_pinned_to_another_alg_is_ignored() -> None:
    bundle = bundle_of({"use": "jwt-svid", "kid": "a", **EC_JWK, "alg": "RS256"})
    assert dict(bundle.jwt_keys) == {}


def test_refresh_interval_defaults_to_five_minutes() -> None:
    assert bundle_of().refresh_interval_s == DEFAULT_REFRESH_S == 300
    assert bundle_of(spiffe_refresh_hint=60).refresh_interval_s == 60


def test_lower_sequence_is_refused_as_an_update() -> None:
    current = bundle_of(spiffe_sequence=5)
    with pytest.raises(BundleError, match="sequence"):
        check_successor(current, bundle_of(spiffe_sequence=4))
    check_successor(current, bundle_of(spiffe_sequence=5))
    check_successor(current, bundle_of(spiffe_sequence=6))
    check_successor(None, bundle_of(spiffe_sequence=1))


def test_bundle_for_an_invalid_trust_domain_name_is_refused() -> None:
    with pytest.raises(BundleError):
        parse_spiffe_bundle('{"keys": []}', "Example.org")
    with pytest.raises(BundleError):
        parse_spiffe_bundle('{"keys": []}', "example.org/path")


def test_missing_bundle_file_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError):
        load_bundle_file(tmp_path / "absent.json", "example.org")


def test_bundle_is_immutable() -> None:
    bundle = bundle_of({"use": "jwt-svid", "kid": "a", **EC_JWK})
    with pytest.raises(TypeError):
        bundle.jwt_keys["b"] = bundle.jwt_keys["a"]  # type: ignore[index]
