"""What every decision-log store does, checked on the in-memory and SQLite stores alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pdp.audit import AuditUnavailable, DecisionFilter, DecisionLog, DuplicateDecision, QueryableLog
from pdp.audit.chain.hashchain import GENESIS
from pdp.audit.store import DecisionStore

MakeRecord = Callable[..., dict[str, Any]]
T0 = datetime(2026, 11, 23, 13, 0, 0, tzinfo=UTC)  # make_record's first timestamp


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["decision_id"] for r in records]


def test_store_implements_both_protocols(store: DecisionStore) -> None:
    assert isinstance(store, DecisionLog) and isinstance(store, QueryableLog)


def test_append_returns_the_record_chained_and_get_returns_it(
        store: DecisionStore, make_record: MakeRecord) -> None:
    record = make_record()
    stored = asyncio.run(store.append(record))
    assert stored["seq"] == 1 and stored["prev_hash"] == GENESIS and len(stored["hash"]) == 64
    assert {k: v for k, v in stored.items() if k not in ("seq", "prev_hash", "hash")} == record
    assert store.get(record["decision_id"]) == stored
    assert store.get("no-such-decision") is None


def test_tail_returns_the_newest_records_newest_last(store: DecisionStore,
                                                    make_record: MakeRecord) -> None:
    appended = [store.append_sync(make_record()) for _ in range(5)]
    assert store.tail(3) == appended[2:]
    assert store.tail(50) == appended
    assert store.tail(0) == []


def test_each_record_links_to_the_one_before(store: DecisionStore,
                                            make_record: MakeRecord) -> None:
    first = store.append_sync(make_record())
    second = asyncio.run(store.append(make_record()))
    assert second["seq"] == 2 and second["prev_hash"] == first["hash"]


def test_changing_the_callers_dict_after_append_changes_nothing_stored(
        store: DecisionStore, make_record: MakeRecord) -> None:
    record = make_record()
    store.append_sync(record)
    record["decision"] = "deny"
    record["request"]["context"]["ip"] = "6.6.6.6"
    stored = store.get(record["decision_id"])
    assert stored is not None
    assert stored["decision"] == "allow" and stored["request"]["context"]["ip"] == "10.0.0.1"
    assert store.verify().ok


def test_chain_keys_given_by_the_caller_are_ignored(store: DecisionStore,
                                                   make_record: MakeRecord) -> None:
    stored = store.append_sync(make_record(seq=99, prev_hash="f" * 64, hash="e" * 64))
    assert (stored["seq"], stored["prev_hash"]) == (1, GENESIS)
    assert store.verify().ok


def test_admin_events_without_decision_fields_are_stored(store: DecisionStore,
                                                        make_admin_event: Any) -> None:
    event = make_admin_event()
    store.append_sync(event)
    page = store.query(DecisionFilter(kind="admin"))
    assert ids(page.records) == [event["decision_id"]]
    assert page.records[0]["detail"] == {"commit": "c0ffee"}


def test_appending_the_same_record_again_returns_the_stored_copy(
        store: DecisionStore, make_record: MakeRecord) -> None:
    record = make_record()
    first = store.append_sync(record)
    again = asyncio.run(store.append(dict(record)))
    assert again == first
    assert len(list(store.iter_all())) == 1


def test_another_record_under_a_known_decision_id_is_refused(
        store: DecisionStore, make_record: MakeRecord) -> None:
    record = make_record()
    store.append_sync(record)
    with pytest.raises(DuplicateDecision):
        store.append_sync({**record, "decision": "deny"})
    assert store.get(record["decision_id"])["decision"] == "allow"  # type: ignore[index]


def test_nan_and_infinities_which_json_cannot_hold_are_stored_as_null(
        store: DecisionStore, make_record: MakeRecord) -> None:
    appended = store.append_sync(make_record(latency_us=float("nan"),
                                             live={"risk": float("inf")}))
    stored = store.get(appended["decision_id"])
    assert stored is not None and stored["hash"] == appended["hash"]
    assert (stored["latency_us"], stored["live"]) == (None, {"risk": None})
    assert store.verify().ok  # type: ignore[attr-defined]


@pytest.mark.parametrize("broken", [
    {"decision_id": None}, {"decision_id": ""}, {"timestamp": "yesterday"},
    {"principal": {"not": "a string"}},
    {"request": {"when": datetime.now()}}, {"reason_codes": [1, 2]},
])
def test_malformed_record_is_a_value_error_and_stores_nothing(
        store: DecisionStore, make_record: MakeRecord, broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        store.append_sync(make_record(**broken))
    with pytest.raises(ValueError):
        asyncio.run(store.append(make_record(**broken)))
    assert store.tail(10) == []


def test_record_without_timestamp_is_refused(store: DecisionStore,
                                            make_record: MakeRecord) -> None:
    record = make_record()
    del record["timestamp"]
    with pytest.raises(ValueError):
        store.append_sync(record)


def test_iter_all_yields_every_record_in_seq_order(store: DecisionStore,
                                                  make_record: MakeRecord) -> None:
    appended = [store.append_sync(make_record()) for _ in range(7)]
    assert list(store.iter_all()) == appended


def test_verify_reports_an_intact_log(store: DecisionStore, make_record: MakeRecord) -> None:
    assert store.verify().ok and store.verify().checked == 0
    last = [store.append_sync(make_record()) for _ in range(10)][-1]
    report = store.verify()
    assert report.ok and report.checked == 10
    assert (report.last_seq, report.head_hash) == (10, last["hash"])


def test_append_after_close_is_unavailable(store: DecisionStore,
                                          make_record: MakeRecord) -> None:
    store.append_sync(make_record())
    store.close()
    with pytest.raises(AuditUnavailable):
        store.append_sync(make_record())
    with pytest.raises(AuditUnavailable):
        asyncio.run(store.append(make_record()))
    store.close()  # closing twice is harmless
    assert len(store.tail(5)) == 1  # what was stored stays readable


# -- filters ------------------------------------------------------------------

@pytest.fixture
def populated(store: DecisionStore, make_record: MakeRecord,
              make_admin_event: Any) -> dict[str, str]:
    """A small log with one distinguishing record per filter; returns name -> decision_id."""
    named = {
        "plain": make_record(),
        "other_principal": make_record(principal="spiffe://example.org/billing"),
        "prefix_lookalike": make_record(principal="spiffe://example.org/agentX"),
        "other_domain": make_record(principal="spiffe://other.org/agent"),
        "upper_case": make_record(principal="SPIFFE://example.org/agent"),
        "write": make_record(action='App::Action::"write"'),
        "other_resource": make_record(resource='App::Dataset::"hr"'),
        "deny": make_record(decision="deny", policy="forbid-incident"),
        "policy_lookalike": make_record(policy="allow-readers-extra"),
        "other_pep": make_record(pep="envoy"),
        "no_principal": make_record(principal=None, decision="deny",
                                    reason_codes=["identity.missing"], reasons=[]),
        "admin": make_admin_event(),
    }
    for record in named.values():
        store.append_sync(record)
    return {name: record["decision_id"] for name, record in named.items()}


ALL = ["plain", "other_principal", "prefix_lookalike", "other_domain", "upper_case", "write",
       "other_resource", "deny", "policy_lookalike", "other_pep", "no_principal", "admin"]
EXAMPLE_ORG = ["plain", "other_principal", "prefix_lookalike", "write", "other_resource",
               "deny", "policy_lookalike", "other_pep"]
DEFAULTS = [n for n in EXAMPLE_ORG if n not in ("other_principal", "prefix_lookalike")]


@pytest.mark.parametrize(("flt", "expected"), [
    (DecisionFilter(), ALL),
    (DecisionFilter(principal="spiffe://example.org/agent"), DEFAULTS),
    (DecisionFilter(principal_prefix="spiffe://example.org/"), EXAMPLE_ORG),
    (DecisionFilter(principal_prefix="spiffe://example.org/agent"),
     [*DEFAULTS, "prefix_lookalike"]),
    (DecisionFilter(principal_prefix="spiffe://example.org/agent/"), []),
    (DecisionFilter(principal_prefix="spiffe:%"), []),  # no LIKE wildcards
    (DecisionFilter(action='App::Action::"write"'), ["write"]),
    (DecisionFilter(resource='App::Dataset::"hr"'), ["other_resource"]),
    (DecisionFilter(decision="deny"), ["deny", "no_principal"]),
    (DecisionFilter(decision="allow", pep="envoy"), ["other_pep"]),
    (DecisionFilter(policy="allow-readers"),
     [n for n in EXAMPLE_ORG + ["other_domain", "upper_case"]
      if n not in ("deny", "policy_lookalike")]),
    (DecisionFilter(policy="forbid-incident"), ["deny"]),
    (DecisionFilter(policy="allow"), []),  # an element, not a substring
    (DecisionFilter(reason_code="identity.missing"), ["no_principal"]),
    (DecisionFilter(reason_code="policy.forbid"), ["deny"]),
    (DecisionFilter(pep="envoy"), ["other_pep"]),
    (DecisionFilter(kind="admin"), ["admin"]),
    (DecisionFilter(kind="decision", decision="deny", principal_prefix="spiffe://"), ["deny"]),
])
def test_query_filter_selects_exactly_the_matching_records(
        store: DecisionStore, populated: dict[str, str], flt: DecisionFilter,
        expected: list[str]) -> None:
    page = store.query(flt, limit=100)
    assert set(ids(page.records)) == {populated[name] for name in expected}
    assert page.next_cursor is None


def test_query_time_range_is_since_inclusive_until_exclusive(
        store: DecisionStore, make_record: MakeRecord) -> None:
    records = [store.append_sync(make_record()) for _ in range(6)]  # T0 + 0..5 s
    flt = DecisionFilter(since=T0 + timedelta(seconds=1), until="2026-11-23T13:00:04Z")
    assert ids(store.query(flt).records) == ids(records[1:4])[::-1]
    # Another zone, same instants.
    flt = DecisionFilter(since="2026-11-23T14:00:02+01:00")
    assert ids(store.query(flt).records) == ids(records[2:])[::-1]
    naive_utc = DecisionFilter(until=datetime(2026, 11, 23, 13, 0, 2))
    assert ids(store.query(naive_utc).records) == ids(records[:2])[::-1]


def test_record_timestamps_in_other_offsets_filter_by_instant(
        store: DecisionStore, make_record: MakeRecord) -> None:
    early = store.append_sync(make_record(timestamp="2026-11-23T14:00:00+02:00"))  # 12:00Z
    late = store.append_sync(make_record(timestamp="2026-11-23T13:30:00Z"))
    flt = DecisionFilter(since=datetime(2026, 11, 23, 12, 30, tzinfo=UTC))
    assert ids(store.query(flt).records) == [late["decision_id"]]
    assert early["timestamp"] == "2026-11-23T14:00:00+02:00"  # the record itself is untouched


def test_bad_filter_timestamp_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        DecisionFilter(since="last tuesday")


def test_pages_come_newest_first_and_cursors_walk_every_record_once(
        store: DecisionStore, make_record: MakeRecord) -> None:
    appended = [store.append_sync(make_record(decision="deny" if i % 3 else "allow"))
                for i in range(23)]
    wanted = [r for r in reversed(appended) if r["decision"] == "deny"]
    seen, cursor, pages = [], None, 0
    while True:
        page = store.query(DecisionFilter(decision="deny"), limit=4, cursor=cursor)
        seen.extend(page.records)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == wanted and pages == 4  # 15 records: 4 + 4 + 4 + 3


def test_records_appended_meanwhile_do_not_shift_later_pages(
        store: DecisionStore, make_record: MakeRecord) -> None:
    appended = [store.append_sync(make_record()) for _ in range(6)]
    first = store.query(DecisionFilter(), limit=3)
    store.append_sync(make_record())
    second = store.query(DecisionFilter(), limit=3, cursor=first.next_cursor)
    assert ids(second.records) == ids(appended[:3])[::-1]


def test_exact_last_page_has_no_next_cursor(store: DecisionStore,
                                           make_record: MakeRecord) -> None:
    for _ in range(4):
        store.append_sync(make_record())
    page = store.query(DecisionFilter(), limit=4)
    assert len(page.records) == 4 and page.next_cursor is None


@pytest.mark.parametrize("cursor", ["", "not-base64!", "eyJ2IjoxfQ", "bnVsbA", "e30"])
def test_cursor_we_did_not_issue_is_a_value_error(store: DecisionStore, cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        store.query(DecisionFilter(), cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limit_out_of_range_is_a_value_error(store: DecisionStore, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.query(DecisionFilter(), limit=limit)
