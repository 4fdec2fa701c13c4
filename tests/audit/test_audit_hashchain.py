"""The hash chain: canonical hashing and detection of edits, deletions and moves."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.audit.chain.hashchain import (
    GENESIS,
    canonical,
    hashed_text,
    link_hash,
    record_text,
    reference_canonical,
    seal,
    stored_text,
    verify_chain,
)
from tests.conftest import examples


def chain(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    records, head = [], GENESIS
    for seq, body in enumerate(bodies, start=1):
        records.append(seal(body, seq, head))
        head = records[-1]["hash"]
    return records


def bodies(n: int) -> list[dict[str, Any]]:
    return [{"decision_id": f"d{i}", "decision": "allow", "n": i} for i in range(1, n + 1)]


def test_link_hash_is_sha256_of_prev_hash_newline_the_stored_text() -> None:
    record = {"b": 1, "a": "ü", "seq": 9, "prev_hash": "x", "hash": "y"}
    expected = hashlib.sha256((GENESIS + "\n" + '{"seq":9,"a":"ü","b":1}').encode()).hexdigest()
    assert link_hash(GENESIS, record) == expected


def test_link_hash_ignores_key_order_and_the_other_chain_keys() -> None:
    a = {"x": 1, "y": {"q": [1, 2], "p": None}, "seq": 5}
    b = {"y": {"p": None, "q": [1, 2]}, "x": 1, "seq": 5, "hash": "h", "prev_hash": "p"}
    assert link_hash(GENESIS, a) == link_hash(GENESIS, b)
    assert link_hash(GENESIS, a) != link_hash("1" * 64, a)
    assert link_hash(GENESIS, a) != link_hash(GENESIS, {**a, "seq": 6})  # the seq is hashed


def test_stored_text_puts_the_seq_first() -> None:
    assert stored_text(7, '{"a":1}') == '{"seq":7,"a":1}'
    assert stored_text(7, "{}") == '{"seq":7}'


def test_hashed_text_is_the_stored_text_or_for_format_1_the_canonical_body() -> None:
    text = '{"seq":3,"z":1,"a":2}'
    assert hashed_text(text, json.loads(text)) is text  # format 2: exactly what is stored
    old = {"z": 1, "a": 0.00001, "seq": 3, "prev_hash": "p", "hash": "h"}  # format 1
    assert hashed_text(canonical(old), old) == '{"a":1e-05,"z":1}'


def test_canonical_refuses_nan_which_is_not_json() -> None:
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


def test_intact_chain_verifies_and_reports_its_head() -> None:
    records = chain(bodies(5))
    report = verify_chain(records)
    assert report.ok and report.checked == 5
    assert (report.last_seq, report.head_hash) == (5, records[-1]["hash"])
    assert report.problem is None and report.first_broken_seq is None


def test_empty_chain_is_ok() -> None:
    assert verify_chain([]) == verify_chain(iter(()))
    assert verify_chain([]).ok and verify_chain([]).head_hash == GENESIS


def test_edited_record_is_reported_as_hash_mismatch_at_its_seq() -> None:
    records = chain(bodies(5))
    records[2]["decision"] = "deny"
    report = verify_chain(records)
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "hash mismatch", 3)
    assert report.first_broken_decision_id == "d3" and report.checked == 2


def test_edited_and_rehashed_record_breaks_the_next_link() -> None:
    records = chain(bodies(5))
    records[2]["decision"] = "deny"
    records[2] = seal(records[2], 3, records[1]["hash"])
    report = verify_chain(records)
    assert (report.problem, report.first_broken_seq) == ("prev_hash mismatch", 4)


def test_deleted_record_is_reported_as_sequence_gap_at_the_missing_seq() -> None:
    records = chain(bodies(5))
    del records[1]
    report = verify_chain(records)
    assert (report.problem, report.first_broken_seq) == ("sequence gap", 2)
    assert report.first_broken_decision_id == "d3"  # found where seq 2 should be


def test_deleted_record_with_renumbered_successors_breaks_prev_hash() -> None:
    records = chain(bodies(5))
    del records[1]
    for seq, record in enumerate(records, start=1):
        record["seq"] = seq
    report = verify_chain(records)
    assert (report.problem, report.first_broken_seq) == ("prev_hash mismatch", 2)


@pytest.mark.parametrize(("i", "j"), [(0, 1), (1, 3), (3, 4), (0, 4)])
def test_swapped_records_are_reported_out_of_order_at_the_first_moved_seq(i: int,
                                                                          j: int) -> None:
    records = chain(bodies(5))
    records[i], records[j] = records[j], records[i]
    report = verify_chain(records)
    assert (report.problem, report.first_broken_seq) == ("out of order", i + 1)


def test_repeated_record_is_out_of_order() -> None:
    records = chain(bodies(3))
    report = verify_chain([*records, records[1]])
    assert (report.problem, report.first_broken_seq) == ("out of order", 4)


def test_record_without_chain_keys_is_malformed() -> None:
    records = chain(bodies(3))
    del records[1]["hash"]
    report = verify_chain(records)
    assert (report.problem, report.first_broken_seq) == ("malformed record", 2)
    assert verify_chain(["not a record"]).problem == "malformed record"


def test_cut_off_tail_still_verifies_so_the_head_must_be_anchored() -> None:
    records = chain(bodies(5))
    report = verify_chain(records[:3])
    assert report.ok and report.last_seq == 3  # only comparing with an anchor shows the loss
    assert report.head_hash != records[-1]["hash"]


# -- property: one random tampering is always caught, at the right seq ------

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | \
    st.floats(allow_nan=False, allow_infinity=False)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
record_body = st.builds(
    lambda i, extra: {**extra, "decision_id": f"id-{i}", "payload": extra.get("payload")},
    st.integers(), st.dictionaries(st.text(max_size=6).filter(
        lambda k: k not in ("seq", "prev_hash", "hash", "decision_id")), json_value, max_size=4))


@settings(max_examples=examples(300), deadline=None)
@given(bodies=st.lists(record_body, min_size=2, max_size=25), data=st.data())
def test_any_single_mutation_is_detected_at_the_right_seq(bodies: list[dict[str, Any]],
                                                           data: st.DataObject) -> None:
    records = chain(bodies)
    n = len(records)
    assert verify_chain(records).ok
    kind = data.draw(st.sampled_from(["modify", "delete", "swap"]))
    if kind == "modify":
        i = data.draw(st.integers(0, n - 1))
        key = data.draw(st.sampled_from(["payload", "decision_id", "new-key", "prev_hash",
                                         "hash"]))
        new = data.draw(json_value.filter(lambda v: v != records[i].get(key)))
        if key in ("prev_hash", "hash"):
            new = data.draw(st.text(min_size=1).filter(lambda v: v != records[i][key]))
        records[i][key] = new
        expected = ("prev_hash mismatch" if key == "prev_hash" else "hash mismatch", i + 1)
    elif kind == "delete":
        i = data.draw(st.integers(0, n - 2))  # not the last: see the anchoring test above
        del records[i]
        expected = ("sequence gap", i + 1)
    else:
        i, j = sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2,
                                         unique=True)))
        records[i], records[j] = records[j], records[i]
        expected = ("out of order", i + 1)
    report = verify_chain(records)
    assert not report.ok
    assert (report.problem, report.first_broken_seq) == expected
    assert report.checked == i


# -- the fast canonical encoder against the reference ----------------------------------

def _reference_or_error(value: Any) -> str | type[BaseException]:
    try:
        return reference_canonical(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return type(exc)


def _canonical_or_error(value: Any) -> str | type[BaseException]:
    try:
        return canonical(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return type(exc)


_any_float = st.floats() | st.floats(min_value=-1e-3, max_value=1e-3) | st.sampled_from(
    [1e-4, 9.99e-5, 1e-5, 1.5e-10, 1e16, 1e22, 5e-324, -0.0, float("nan"), float("inf")])
_leaf = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70) | _any_float
         | st.text() | st.characters().map(str))
_key = st.text() | st.sampled_from(["seq", "hash", "a", "é", "\U0001f600", "\uffff", "A"])
_value = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                      | st.tuples(inner, inner)
                      | st.dictionaries(_key, inner, max_size=4)
                      | st.dictionaries(st.integers() | st.booleans() | st.none(), inner,
                                        max_size=2),
                      max_leaves=16)


@settings(max_examples=examples(1500), deadline=None)
@given(value=st.dictionaries(_key, _value, max_size=6))
def test_canonical_is_exactly_the_reference_text_or_the_same_refusal(value: Any) -> None:
    # canonical() may take orjson's text only where it is byte for byte the reference's.
    assert _canonical_or_error(value) == _reference_or_error(value)


@pytest.mark.parametrize("value", [
    {"x": float("nan")}, {"x": [float("-inf")]}, {"x": 1e-7}, {"x": 0.00001}, {"x": 2**64},
    {1: "int key"}, {"t": (1, 2)}, {"s": "\ud800"},
    {"u": __import__("uuid").UUID(int=1)}, {"e": __import__("enum").Enum("E", "A").A},
    {"d": __import__("datetime").datetime(2026, 1, 1)}, {"b": b"bytes"}, {"set": {1}},
])
def test_values_orjson_writes_otherwise_get_the_reference_answer(value: Any) -> None:
    assert _canonical_or_error(value) == _reference_or_error(value)


# -- the stored text (chain format 2) ----------------------------------------------------

def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


@settings(max_examples=examples(1500), deadline=None)
@given(value=st.dictionaries(_key, _value, max_size=6))
def test_record_text_is_strict_json_that_reads_back_to_itself(value: Any) -> None:
    # What a dict-level verifier (link_hash) relies on: parse the text, write it again,
    # and get the very text that was hashed.
    try:
        text = record_text(value)
    except (TypeError, ValueError, RecursionError):
        return  # refused: never stored
    again = json.loads(text, parse_constant=_no_constants)
    assert record_text(again) == text
    assert list(again) == sorted(again)  # keys sorted (UTF-8 order is code-point order)


@settings(max_examples=examples(300), deadline=None)
@given(value=st.dictionaries(st.text(max_size=8), json_value, max_size=6))
def test_record_text_of_plain_json_reads_back_to_the_same_value(value: Any) -> None:
    assert json.loads(record_text(value)) == value


@pytest.mark.parametrize(("value", "text"), [
    ({"x": float("nan"), "y": [float("inf")]}, '{"x":null,"y":[null]}'),  # as orjson writes them
    ({"x": 1e-7, "y": 0.00001}, '{"x":1e-7,"y":0.00001}'),
    ({"big": 2**70, "f": 1e-5}, '{"big":1180591620717411303424,"f":1e-05}'),  # json writes these
    ({"t": (1, 2)}, '{"t":[1,2]}'),
    ({"u": __import__("uuid").UUID(int=1)}, '{"u":"00000000-0000-0000-0000-000000000001"}'),
])
def test_record_text_writes_what_json_cannot_hold_as_orjson_does(value: Any, text: str) -> None:
    assert record_text(value) == text


@pytest.mark.parametrize("value", [
    {1: "int key"}, {"s": "\ud800"}, {"d": __import__("datetime").datetime(2026, 1, 1)},
    {"b": b"bytes"}, {"set": {1}}, {"big": 2**70, "k": {1: 2}}, {"big": 2**70, "t": (1,)},
])
def test_record_text_refuses_what_would_not_read_back(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        record_text(value)
