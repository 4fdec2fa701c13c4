"""How a record is read and serialized before it is chained."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.audit import MemoryDecisionLog
from pdp.audit.chain.hashchain import GENESIS, body, link_hash, stored_text
from pdp.audit.records import columns_of, normalize_ts, prepare
from tests.conftest import examples


@pytest.mark.parametrize(("given_ts", "expected"), [
    ("2026-11-23T13:00:00.123456Z", "2026-11-23T13:00:00.123456Z"),
    ("2026-11-23T13:00:00Z", "2026-11-23T13:00:00.000000Z"),
    ("2026-11-23T14:00:00.5+01:00", "2026-11-23T13:00:00.500000Z"),
    ("2026-11-23 13:00:00", "2026-11-23T13:00:00.000000Z"),
    (datetime(2026, 11, 23, 13, 0), "2026-11-23T13:00:00.000000Z"),
    (datetime(2026, 11, 23, 8, 0, tzinfo=timezone(timedelta(hours=-5))),
     "2026-11-23T13:00:00.000000Z"),
])
def test_timestamps_normalize_to_one_utc_text_form(given_ts: Any, expected: str) -> None:
    assert normalize_ts(given_ts) == expected


@pytest.mark.parametrize("bad", ["2026-13-01T00:00:00.000000Z", "soon", "", 1700000000])
def test_unreadable_timestamps_are_value_errors(bad: Any) -> None:
    with pytest.raises(ValueError):
        normalize_ts(bad)


def test_determining_policies_come_from_the_reasons() -> None:
    cols = columns_of({"decision_id": "d", "timestamp": "2026-11-23T13:00:00Z",
                       "reasons": [{"policy": "a"}, {"policy": "b", "effect": "forbid"},
                                   {"message": "no policy"}],
                       "reason_codes": ["policy.forbid"]})
    assert cols.policies == ("a", "b") and cols.reason_codes == ("policy.forbid",)


@pytest.mark.parametrize("field", ["kind", "principal", "action", "resource", "decision",
                                   "pep"])
@pytest.mark.parametrize("bad", [1, 1.5, True, b"allow", ["allow"], {"x": "y"}])
def test_each_query_column_refuses_what_is_not_a_string_and_names_itself(
        field: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=f"record field '{field}' must be a string or null"):
        columns_of({"decision_id": "d", "timestamp": "2026-11-23T13:00:00Z", field: bad})


class _Text(str):
    """A str subclass (as an enum of decisions might be): a string, so a column."""


def test_query_columns_take_strings_of_any_str_type_and_null() -> None:
    cols = columns_of({"decision_id": "d", "timestamp": "2026-11-23T13:00:00Z",
                       "kind": None, "principal": _Text("p"), "decision": _Text("allow")})
    assert (cols.kind, cols.principal, cols.decision) == (None, "p", "allow")


def test_text_that_is_not_utf8_encodable_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON-able"):
        prepare({"decision_id": "d", "timestamp": "2026-11-23T13:00:00Z", "x": "\ud800"})


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | \
    st.floats(allow_nan=False, allow_infinity=False)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                          max_leaves=10)


@settings(max_examples=examples(300), deadline=None)
@given(extra=st.dictionaries(st.text(max_size=10), json_value, max_size=6),
       seq=st.integers(1, 10**12))
def test_stored_text_is_the_seq_and_the_sorted_json_of_the_rest(extra: dict[str, Any],
                                                               seq: int) -> None:
    record = {**extra, "decision_id": "d-1", "timestamp": "2026-11-23T13:00:00Z"}
    for key in ("kind", "principal", "action", "resource", "decision", "pep",
                "reasons", "reason_codes"):
        record.pop(key, None)  # keep the indexed fields valid
    p = prepare(record)
    assert json.loads(p.body_json) == body(record)
    text = stored_text(seq, p.body_json)
    assert json.loads(text) == {**body(record), "seq": seq}
    stored = p.stored(seq, GENESIS, link_hash(GENESIS, {**record, "seq": seq}))
    assert stored["hash"] == hashlib.sha256(f"{GENESIS}\n{text}".encode()).hexdigest()


def test_record_that_looks_like_a_stored_text_is_stored_faithfully() -> None:
    # Content a PEP sent (chain keys one level down, JSON in strings) is just content.
    mimic = {"decision_id": "d-1", "timestamp": "2026-11-23T13:00:00Z", "seq": 99,
             "request": {"seq": 1, "hash": "h", "prev_hash": "p", "x": '{"seq":2,'}}
    log = MemoryDecisionLog()
    stored = log.append_sync(mimic)
    assert stored["seq"] == 1 and stored["request"] == mimic["request"]
    assert log.get("d-1") == stored
    assert log.verify().ok
