"""X.509-SVIDs: every row of testdata/spiffe/x509/expected.json, and one minted chain per rule."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pdp.identity.errors import (
    Expired,
    IdentityError,
    InvalidCertificate,
    MalformedCredential,
    MissingCredential,
    NotYetValid,
    UntrustedIssuer,
)
from pdp.identity.model import X509Chain
from pdp.identity.trust_bundle import BundleError, load_bundle_file
from pdp.identity.x509_svid import (
    check_spiffe_leaf_rules,
    load_pem_chain,
    verify_x509_svid,
    x509_svid_failures,
)
from tests.conftest import SHARED_TESTDATA

SPIFFE_TESTDATA = SHARED_TESTDATA / "spiffe"
ROWS: list[dict[str, Any]] = json.loads((SPIFFE_TESTDATA / "x509" / "expected.json").read_text())
ANY_TIME = datetime.fromisoformat("2020-04-01T00:00:00+00:00")


def row_id(row: dict[str, Any]) -> str:
    return f"{row['file']}@{row['at']}:{row['trust_bundle']}"


def load_row(row: dict[str, Any]) -> tuple[str, datetime]:
    pem = (SPIFFE_TESTDATA / row["file"]).read_text(encoding="utf-8", errors="replace")
    at = datetime.fromisoformat(row["at"]) if row["at"] else ANY_TIME
    return pem, at


def test_there_are_26_vectors() -> None:
    assert len(ROWS) == 26


@pytest.mark.parametrize("row", ROWS, ids=[row_id(r) for r in ROWS])
def test_x509_vector(row: dict[str, Any]) -> None:
    pem, at = load_row(row)
    if row["reason"] == "bundle-invalid":
        # Nothing to validate against: loading fails, the domain stays untrusted.
        with pytest.raises(BundleError) as bundle_error:
            load_bundle_file(SPIFFE_TESTDATA / row["trust_bundle"], row["trust_domain"])
        assert bundle_error.value.reason == row["reason"]
        with pytest.raises(UntrustedIssuer):
            verify_x509_svid(pem, {}, at)
        return
    bundles = ({row["trust_domain"]: load_bundle_file(SPIFFE_TESTDATA / row["trust_bundle"],
                                                      row["trust_domain"])}
               if row["trust_bundle"] else {})
    if row["expect"] == "valid":
        identity = verify_x509_svid(pem, bundles, at)
        assert identity.principal_id == row["spiffe_id"]
        assert identity.kind == "x509-svid"
        return
    with pytest.raises(IdentityError) as e:
        verify_x509_svid(pem, bundles, at)
    assert e.value.reason == row["reason"]


@pytest.mark.parametrize("row", [r for r in ROWS if r["expect"] == "invalid"
                                 and r["reason"] not in ("bundle-invalid",)
                                 and r["trust_bundle"]], ids=row_id)
def test_x509_vector_lists_every_failure(row: dict[str, Any]) -> None:
    pem, at = load_row(row)
    bundle = load_bundle_file(SPIFFE_TESTDATA / row["trust_bundle"], row["trust_domain"])
    assert x509_svid_failures(load_pem_chain(pem), bundle, at) == row["failures"]


@pytest.mark.parametrize("row", [r for r in ROWS if r["file"].startswith("x509/wrong-")],
                         ids=row_id)
def test_spiffe_leaf_rules_of_the_wrong_files(row: dict[str, Any]) -> None:
    pem, _ = load_row(row)
    leaf_failures = [f for f in row["failures"] if f != "no-path-to-bundle-authority"]
    assert check_spiffe_leaf_rules(load_pem_chain(pem)) == leaf_failures


def test_vector_outside_validity_distinguishes_expired_from_not_yet_valid() -> None:
    pem = (SPIFFE_TESTDATA / "x509/good-leaf-and-intermediate.pem").read_text()
    bundles = {"example.org": load_bundle_file(
        SPIFFE_TESTDATA / "bundles/spiffebundle_valid_1.json", "example.org")}
    with pytest.raises(NotYetValid):
        verify_x509_svid(pem, bundles, datetime.fromisoformat("2020-03-24T14:07:29+00:00"))
    with pytest.raises(Expired):
        verify_x509_svid(pem, bundles, datetime.fromisoformat("2020-03-24T15:07:41+00:00"))


def test_vector_identity_fields() -> None:
    pem = (SPIFFE_TESTDATA / "x509/good-leaf-and-intermediate.pem").read_text()
    bundles = {"example.org": load_bundle_file(
        SPIFFE_TESTDATA / "bundles/spiffebundle_valid_1.json", "example.org")}
    identity = verify_x509_svid(pem, bundles, datetime.fromisoformat("2020-03-24T14:30:00+00:00"))
    leaf = load_pem_chain(pem)[0]
    assert identity.serial == format(leaf.serial_number, "x")
    assert identity.issuer == leaf.issuer.rfc4514_string()
    assert identity.expires_at == leaf.not_valid_after_utc
    assert (identity.trust_domain, identity.path) == ("example.org", "/workload-1")


# -- minted chains: each SPIFFE rule through the full path ---------------------------------

def verify_minted(xk: Any, pem: str, td: str = "example.org", at: datetime | None = None) -> Any:
    return verify_x509_svid(pem, {td: xk.bundle(td)}, at or xk.now)


def refused(xk: Any, spec: Any, reason: str, error: type[IdentityError] = InvalidCertificate) -> None:
    pem = xk.chain_pem(xk.leaf(spec))
    with pytest.raises(error) as e:
        verify_minted(xk, pem)
    assert e.value.reason == reason


def test_minted_valid_svid_verifies(xk: Any) -> None:
    identity = verify_minted(xk, xk.chain_pem(xk.leaf()))
    assert identity.principal_id == "spiffe://example.org/ns/prod/sa/api"
    assert identity.serial == "1001"


def test_leaf_without_eku_is_accepted(xk: Any) -> None:
    assert verify_minted(xk, xk.chain_pem(xk.leaf(xk.Spec(eku=None)))).kind == "x509-svid"


def test_leaf_with_two_uri_sans_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(uris=("spiffe://example.org/a", "spiffe://example.org/b")),
            "leaf-multiple-uri-sans")


def test_leaf_with_a_spiffe_and_an_https_uri_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(uris=("spiffe://example.org/a", "https://example.org/")),
            "leaf-multiple-uri-sans")


def test_leaf_without_uri_san_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(uris=()), "leaf-no-uri-san")


def test_leaf_with_a_non_spiffe_uri_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(uris=("spiffe://Example.org/a",)), "leaf-bad-spiffe-id")


def test_leaf_with_the_trust_domain_id_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(uris=("spiffe://example.org",)), "leaf-no-path")


def test_leaf_without_digital_signature_alone_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(digital_signature=False), "leaf-no-digital-signature")


def test_leaf_without_key_usage_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(key_usage=False), "leaf-no-key-usage")


def test_leaf_with_key_cert_sign_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(key_cert_sign=True), "leaf-key-cert-sign")


def test_leaf_with_crl_sign_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(crl_sign=True), "leaf-crl-sign")


def test_leaf_with_eku_without_client_auth_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(eku=(ExtendedKeyUsageOID.SERVER_AUTH,)), "leaf-eku-no-client-auth")


def test_leaf_with_ca_true_is_rejected(xk: Any) -> None:
    refused(xk, xk.Spec(ca=True), "leaf-ca-true")


def test_intermediate_without_key_cert_sign_is_rejected(xk: Any) -> None:
    weak = xk.ca("example.org", issuer=xk.roots["example.org"], name="weak", key_cert_sign=False)
    pem = xk.leaf(issuer=weak).pem + weak.pem
    with pytest.raises(InvalidCertificate) as e:
        verify_minted(xk, pem)
    assert e.value.reason == "signing-cert-no-key-cert-sign"


def test_intermediate_with_ca_false_is_rejected(xk: Any) -> None:
    fake = xk.ca("example.org", issuer=xk.roots["example.org"], name="fake", ca=False)
    with pytest.raises(InvalidCertificate) as e:
        verify_minted(xk, xk.leaf(issuer=fake).pem + fake.pem)
    assert e.value.reason == "signing-cert-not-ca"


def test_svid_checked_with_another_domains_bundle_is_rejected(xk: Any) -> None:
    # A leaf of other.org, signed by other.org's CA: example.org's bundle never vouches for it.
    pem = xk.chain_pem(xk.leaf(xk.Spec(uris=("spiffe://other.org/api",)), td="other.org"),
                       "other.org")
    with pytest.raises(UntrustedIssuer):
        verify_x509_svid(pem, {"example.org": xk.bundle("example.org")}, xk.now)


def test_leaf_claiming_a_domain_but_chaining_to_another_is_rejected(xk: Any) -> None:
    # other.org's CA signs a leaf naming example.org: example.org's bundle must not accept it.
    pem = xk.chain_pem(xk.leaf(td="other.org"), "other.org")  # default URI is example.org
    bundles = {"example.org": xk.bundle("example.org"), "other.org": xk.bundle("other.org")}
    with pytest.raises(InvalidCertificate) as e:
        verify_x509_svid(pem, bundles, xk.now)
    assert e.value.reason == "no-path-to-bundle-authority"


def test_expired_minted_svid_is_rejected(xk: Any) -> None:
    pem = xk.chain_pem(xk.leaf())
    with pytest.raises(Expired):
        verify_minted(xk, pem, at=xk.now + timedelta(hours=1, seconds=1))
    assert verify_minted(xk, pem, at=xk.now + timedelta(hours=1)).kind == "x509-svid"


def test_leaf_without_intermediate_has_no_path(xk: Any) -> None:
    with pytest.raises(InvalidCertificate) as e:
        verify_minted(xk, xk.leaf().pem)
    assert e.value.reason == "no-path-to-bundle-authority"


def test_leaf_with_a_critical_san_and_a_subject_is_accepted(xk: Any) -> None:
    # cryptography's WebPKI end-entity defaults would refuse this valid SVID.
    assert verify_minted(xk, xk.chain_pem(xk.leaf(xk.Spec(san_critical=True)))).kind == "x509-svid"


def test_private_key_blocks_are_skipped(xk: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    leaf = xk.leaf()
    key_pem = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
    assert verify_minted(xk, key_pem + xk.chain_pem(leaf)).kind == "x509-svid"


def test_empty_pem_is_a_missing_credential() -> None:
    with pytest.raises(MissingCredential):
        verify_x509_svid("  \n", {}, ANY_TIME)


def test_too_many_certificates_are_rejected(xk: Any) -> None:
    pem = xk.chain_pem(xk.leaf()) + xk.intermediates["example.org"].pem * 8
    with pytest.raises(MalformedCredential):
        verify_minted(xk, pem)


def test_x509_chain_credential_model_holds_pem(xk: Any) -> None:
    assert X509Chain(pem=xk.chain_pem(xk.leaf())).pem.startswith("-----BEGIN CERTIFICATE-----")


def test_unrelated_extension_does_not_matter(xk: Any) -> None:
    spec = xk.Spec(extra=[x509.SubjectKeyIdentifier(b"\x01" * 20)])
    assert verify_minted(xk, xk.chain_pem(xk.leaf(spec))).kind == "x509-svid"


def test_many_unterminated_begin_lines_are_parsed_in_linear_time() -> None:
    import time
    hostile = "-----BEGIN CERTIFICATE-----\n" * 2340  # ~64 KiB, no END line
    started = time.perf_counter()
    with pytest.raises(MalformedCredential):
        load_pem_chain(hostile)
    assert time.perf_counter() - started < 0.3  # a lazy-regex scan takes ~1 s
