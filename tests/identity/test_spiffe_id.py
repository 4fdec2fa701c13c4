"""SPIFFE ID parsing against every row of testdata/spiffe/ids.json, plus properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdp.identity.errors import BadSpiffeId
from pdp.identity.spiffe_id import SpiffeId, parse_spiffe_id
from tests.conftest import SHARED_TESTDATA

SPIFFE_TESTDATA = SHARED_TESTDATA / "spiffe"

ROWS: list[dict[str, Any]] = json.loads((SPIFFE_TESTDATA / "ids.json").read_text("ascii"))


def test_the_vectors_are_all_there() -> None:
    assert len(ROWS) == 461


@pytest.mark.parametrize("row", ROWS, ids=[repr(r["id"][:60]) for r in ROWS])
def test_spiffe_id_vector(row: dict[str, Any]) -> None:
    if row["valid"]:
        spiffe_id = parse_spiffe_id(row["id"])
        assert (spiffe_id.trust_domain, spiffe_id.path) == (row["trust_domain"], row["path"])
        assert str(spiffe_id) == row["id"]
    else:
        with pytest.raises(BadSpiffeId) as e:
            parse_spiffe_id(row["id"])
        assert e.value.reason == row["reason"]


def test_trailing_newline_is_rejected_unlike_re_match_with_dollar() -> None:
    with pytest.raises(BadSpiffeId):
        parse_spiffe_id("spiffe://example.org/service\n")


def test_kelvin_sign_is_not_lowercased_into_k() -> None:
    with pytest.raises(BadSpiffeId) as e:
        parse_spiffe_id("spiffe://\u212aubernetes.example/ns")
    assert e.value.reason == "non-ascii"


def test_non_string_is_a_bad_spiffe_id() -> None:
    with pytest.raises(BadSpiffeId):
        parse_spiffe_id(42)  # type: ignore[arg-type]


def test_spiffe_id_is_frozen_and_compares_byte_for_byte() -> None:
    a = parse_spiffe_id("spiffe://example.org/Service")
    assert a == SpiffeId("example.org", "/Service")
    assert a != parse_spiffe_id("spiffe://example.org/service")
    with pytest.raises(AttributeError):
        a.path = "/x"  # type: ignore[misc]


_TD = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=40)
_SEGMENT = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                   min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))


@given(st.text(max_size=80))
def test_parse_raises_only_bad_spiffe_id_on_arbitrary_text(value: str) -> None:
    try:
        spiffe_id = parse_spiffe_id(value)
    except BadSpiffeId:
        return
    assert str(spiffe_id) == value


@given(st.one_of(st.text(max_size=30), st.just("spiffe://")).flatmap(
    lambda prefix: st.text(max_size=30).map(lambda rest: prefix + rest)))
def test_parse_near_the_scheme_raises_only_bad_spiffe_id(value: str) -> None:
    try:
        assert str(parse_spiffe_id(value)) == value
    except BadSpiffeId:
        pass


@given(_TD, st.lists(_SEGMENT, max_size=5))
def test_valid_ids_round_trip(trust_domain: str, segments: list[str]) -> None:
    value = "spiffe://" + trust_domain + "".join("/" + s for s in segments)
    spiffe_id = parse_spiffe_id(value)
    assert str(spiffe_id) == value
    assert spiffe_id.trust_domain == trust_domain
