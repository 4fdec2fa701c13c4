"""Redaction: RFC 6901 pointers erased from the logged request and listed in `redacted`."""

from __future__ import annotations

import copy

import pytest

from pdp.audit.auditing.redact import (
    BadPointer,
    Redactor,
    check_redaction_pointer,
    format_pointer,
    parse_pointer,
)
from pdp.config import load_settings


@pytest.mark.parametrize("pointer,tokens", [
    ("/context/card_number", ("context", "card_number")),
    ("/context/a~1b", ("context", "a/b")),
    ("/context/m~0n", ("context", "m~n")),
    ("/context/~01", ("context", "~1")),  # ~0 is decoded after ~1: "~01" is "~1", not "/"
    ("/context/", ("context", "")),
])
def test_pointers_are_parsed_as_rfc_6901_says(pointer, tokens) -> None:
    assert parse_pointer(pointer) == tokens
    assert format_pointer(tokens) == pointer


@pytest.mark.parametrize("pointer", ["context/x", "", "/context/a~2", "/context/~"])
def test_malformed_pointers_are_refused(pointer) -> None:
    with pytest.raises(BadPointer):
        parse_pointer(pointer)


@pytest.mark.parametrize("pointer", ["/action", "/resource/id", "/resource/attrs", "/context",
                                     "/principal/id"])
def test_only_members_of_context_or_resource_attrs_may_be_redacted(pointer) -> None:
    with pytest.raises(BadPointer, match="only members of"):
        check_redaction_pointer(pointer)


def test_a_bad_pointer_in_configuration_is_a_settings_error_naming_it() -> None:
    with pytest.raises(ValueError, match="/resource/id"):
        load_settings(None, audit={"redact": ["/resource/id"]})


def test_matching_pointers_are_erased_and_listed_and_the_input_is_not_touched() -> None:
    request = {"action": "pay", "resource": {"type": "App::Card", "id": "c1",
                                             "attrs": {"ssn": "123", "owner": "ann"}},
               "context": {"card_number": "4111", "nested": {"pin": "0000", "ok": 1},
                           "items": [{"secret": 1}, {"secret": 2}]}}
    before = copy.deepcopy(request)
    redactor = Redactor.from_pointers(["/context/card_number", "/resource/attrs/ssn",
                                       "/context/nested/pin", "/context/items/1/secret",
                                       "/context/missing", "/context/items/7/secret"])
    out, erased = redactor.redact(request)
    assert request == before
    assert erased == ["/context/card_number", "/resource/attrs/ssn", "/context/nested/pin",
                      "/context/items/1/secret"]
    assert out["context"] == {"nested": {"ok": 1}, "items": [{"secret": 1}, {}]}
    assert out["resource"]["attrs"] == {"owner": "ann"}


def test_array_indexes_follow_rfc_6901_no_leading_zeros_no_dash() -> None:
    redactor = Redactor.from_pointers(["/context/xs/01", "/context/xs/-"])
    out, erased = redactor.redact({"context": {"xs": [1, 2]}})
    assert erased == [] and out["context"]["xs"] == [1, 2]


def test_null_attrs_and_non_containers_match_nothing() -> None:
    redactor = Redactor.from_pointers(["/resource/attrs/ssn", "/context/a/b"])
    out, erased = redactor.redact({"resource": {"attrs": None}, "context": {"a": "text"}})
    assert erased == [] and out["resource"]["attrs"] is None
