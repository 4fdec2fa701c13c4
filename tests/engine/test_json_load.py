"""``pdp.engine.json_load.load_json`` parses with orjson where that gives ``json.loads``'
value, and leaves every other text to ``json.loads``: the same value (type included) or
the same exception, on generated JSON of every kind (integers past 64 bits, floats at
the edges, NaN, non-ASCII and lone surrogates, UTF-16) and on near-JSON bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.engine.json_load import load_json
from tests.conftest import examples

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(),  # unbounded: beyond 64 bits orjson would give a float
    st.integers(min_value=-(2**63) - 2, max_value=2**64 + 2),
    st.floats(),  # NaN and infinities included: json writes them, orjson refuses them
    st.text(), st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010,
                                     exclude_categories=())),  # lone surrogates too
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=20)


def outcome(parse: Any, data: bytes) -> tuple[str, str]:
    try:
        return "value", repr(parse(data))  # repr: 1, 1.0 and True differ, nan == nan
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        return type(e).__name__, str(e)


@settings(max_examples=examples(500), deadline=None)
@given(value=VALUES, ascii_only=st.booleans(), indent=st.sampled_from([None, 2]),
       encoding=st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32"]))
def test_json_texts_load_as_json_loads_loads_them(value: Any, ascii_only: bool,
                                                  indent: int | None, encoding: str) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:  # a lone surrogate written raw: no encoding takes it
        data = text.encode("utf-8", "surrogatepass")
    assert outcome(load_json, data) == outcome(json.loads, data)


NEAR_JSON = st.text(alphabet='[]{}:,"\\ 0123456789.eE+-truefalsnuNaIiy\u00e9\ud800', max_size=30)


@settings(max_examples=examples(500), deadline=None)
@given(text=NEAR_JSON)
def test_near_json_bytes_load_or_fail_as_with_json_loads(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    assert outcome(load_json, data) == outcome(json.loads, data)


def test_the_texts_orjson_reads_otherwise_are_json_loads_own() -> None:
    for data in (b"123456789012345678901234567890", b"[-9223372036854775809]",
                 b"[18446744073709551616]", b"NaN", b"[1e400]", b'"\\ud800"',
                 b"\xef\xbb\xbf[1]", b'{"a": 1, "a": 2}', b"[1.0, 1, true]"):
        assert outcome(load_json, data) == outcome(json.loads, data)
