"""Retention: old records go, a signed anchor stays, and the rest still verifies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pdp.audit.chain.checkpoint import write_checkpoint
from pdp.audit.chain.verify import verify_log
from pdp.audit.store import DecisionStore
from pdp.audit.upkeep.maintenance import AuditMaintenance
from pdp.audit.upkeep.retention import RetentionRefused, apply_retention
from tests.audit.conftest import at
from tests.audit.sqlraw import RawSql, text_of

MakeRecord = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def fill(store: DecisionStore, make_record: MakeRecord, n: int) -> list[dict[str, Any]]:
    return [store.append_sync(make_record()) for _ in range(n)]  # T0 + 0, 1, 2, ... s


def seqs(store: DecisionStore) -> list[int]:
    return [r["seq"] for r in store.iter_all()]


def test_old_records_are_deleted_behind_a_signed_anchor(sql_store: DecisionStore, key: Any,
                                                        make_record: MakeRecord) -> None:
    stored = fill(sql_store, make_record, 10)
    result = apply_retention(sql_store, older_than=at(5), key=key)
    assert result.deleted == 5 and result.first_kept == 6
    assert result.anchor is not None and result.anchor.kind == "anchor"
    assert (result.anchor.seq, result.anchor.head_hash) == (5, stored[4]["hash"])
    assert seqs(sql_store) == [6, 7, 8, 9, 10]
    report = verify_log(sql_store, public_key=key.public_key())
    assert report.ok and report.anchor_seq == 5 and report.first_seq == 6 and report.checked == 5
    assert any("retention" in note for note in report.notes)
    # The chain goes on after retention.
    later = sql_store.append_sync(make_record())
    assert later["seq"] == 11 and later["prev_hash"] == stored[-1]["hash"]
    assert verify_log(sql_store, public_key=key.public_key()).ok


def test_retention_twice_verifies_from_the_newest_anchor(sql_store: DecisionStore, key: Any,
                                                         make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 10)
    write_checkpoint(sql_store, key, kind="periodic")  # type: ignore[arg-type]
    apply_retention(sql_store, older_than=at(3), key=key)
    second = apply_retention(sql_store, older_than=at(7), key=key)
    assert second.deleted == 4 and seqs(sql_store) == [8, 9, 10]
    report = verify_log(sql_store, public_key=key.public_key())
    assert report.ok and report.anchor_seq == 7 and report.checkpoint is not None
    assert report.checkpoint["seq"] == 10


def test_the_newest_record_is_always_kept(sql_store: DecisionStore, key: Any,
                                          make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 4)
    result = apply_retention(sql_store, older_than=at(1000), key=key)
    assert result.deleted == 3 and seqs(sql_store) == [4]
    assert verify_log(sql_store, public_key=key.public_key()).ok
    assert sql_store.append_sync(make_record())["seq"] == 5


def test_nothing_old_enough_deletes_nothing(sql_store: DecisionStore, key: Any,
                                            make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 3)
    result = apply_retention(sql_store, older_than=at(-1), key=key)
    assert result.deleted == 0 and result.anchor is None and seqs(sql_store) == [1, 2, 3]
    assert apply_retention(sql_store, older_than=at(0), key=key).deleted == 0


def test_records_deleted_beyond_the_anchor_are_a_gap(sql_store: DecisionStore, key: Any,
                                                     make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 10)
    apply_retention(sql_store, older_than=at(4), key=key)
    with RawSql(sql_store) as raw:
        raw.execute("DELETE FROM decisions WHERE seq <= 6")  # two more than retention did
    report = verify_log(sql_store, public_key=key.public_key())
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "sequence gap", 1)


def test_a_deleted_prefix_without_an_anchor_is_a_gap_at_seq_1(
        sql_store: DecisionStore, key: Any, make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 6)
    write_checkpoint(sql_store, key, kind="periodic")  # at 6: not an anchor
    with RawSql(sql_store) as raw:
        raw.execute("DELETE FROM decisions WHERE seq <= 2")
    report = verify_log(sql_store, public_key=key.public_key())
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "sequence gap", 1)


def test_truncation_is_still_caught_after_retention(sql_store: DecisionStore, key: Any,
                                                    make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 10)
    apply_retention(sql_store, older_than=at(5), key=key)
    write_checkpoint(sql_store, key, kind="periodic")  # type: ignore[arg-type]
    with RawSql(sql_store) as raw:
        raw.execute("DELETE FROM decisions WHERE seq > 8")
    report = verify_log(sql_store, public_key=key.public_key())
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "truncated", 9)


def test_retention_refuses_to_delete_records_that_do_not_verify(
        sql_store: DecisionStore, key: Any, make_record: MakeRecord) -> None:
    stored = fill(sql_store, make_record, 8)
    forged = {**stored[2], "decision": "deny"}
    with RawSql(sql_store) as raw:
        raw.execute("UPDATE decisions SET record = ?, decision = 'deny' WHERE seq = 3",
                    (text_of(forged),))
    with pytest.raises(RetentionRefused, match="do not verify"):
        apply_retention(sql_store, older_than=at(5), key=key)
    assert seqs(sql_store) == list(range(1, 9))  # the evidence stays
    assert sql_store.checkpoints() == []  # type: ignore[attr-defined]


def test_an_unsigned_anchor_is_accepted_only_unsigned(sql_store: DecisionStore, key: Any,
                                                      make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 6)
    apply_retention(sql_store, older_than=at(3), key=None)
    assert verify_log(sql_store, public_key=None).ok
    report = verify_log(sql_store, public_key=key.public_key())
    assert (report.problem, report.first_broken_seq) == ("bad checkpoint signature", 3)


def test_maintenance_applies_retention_days(sql_store: DecisionStore, key: Any,
                                            make_record: MakeRecord) -> None:
    now = datetime.now(UTC)
    old = [sql_store.append_sync(make_record(timestamp=(now - timedelta(days=40 - i)).isoformat()))
           for i in range(3)]
    sql_store.append_sync(make_record(timestamp=(now - timedelta(days=1)).isoformat()))
    maintenance = AuditMaintenance(sql_store, key=key, retention_days=30)
    result = maintenance.run_retention()
    assert result is not None and result.deleted == 3 and result.anchor is not None
    assert result.anchor.head_hash == old[-1]["hash"]
    assert seqs(sql_store) == [4]
    maintenance.close()
    assert verify_log(sql_store, public_key=key.public_key()).ok
