"""``DecisionFilter(decision_id_prefix=...)``: every store finds ids by prefix alike
(`pdp audit show` and `replay` take any unique prefix of a decision id)."""

from __future__ import annotations

from pdp.audit.query import DecisionFilter
from pdp.audit.store import DecisionStore


def test_every_store_finds_decision_ids_by_prefix(store: DecisionStore, make_record) -> None:
    ids = ["0a1b2c3d-0000-7000-8000-000000000001", "0a1b2c3d-0000-7000-8000-000000000002",
           "0a1b9999-0000-7000-8000-000000000003", "0a1c0000-0000-7000-8000-000000000004"]
    for decision_id in ids:
        store.append_sync(make_record(decision_id=decision_id))

    def found(prefix: str) -> list[str]:
        page = store.query(DecisionFilter(decision_id_prefix=prefix), 10, None)
        return sorted(r["decision_id"] for r in page.records)

    assert found("0a1b2c3d-0000-7000-8000-000000000002") == [ids[1]]
    assert found("0a1b2c3d") == ids[:2]
    assert found("0a1b") == ids[:3]  # the range stops before 0a1c
    assert found("0a1c") == [ids[3]]
    assert found("0a1d") == []
    assert found("0a1B") == []  # ids are compared as stored: the CLI lowercases first
    # Combined with another filter, both must hold.
    both = store.query(DecisionFilter(decision_id_prefix="0a1b", decision="deny"), 10, None)
    assert both.records == []
