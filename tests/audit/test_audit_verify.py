"""verify_log: the chain, signed checkpoints and truncation, on SQLite and PostgreSQL alike.

Each tampering is done with plain SQL on the database, as someone with write
access but without the checkpoint key would, and must be reported at the
right seq.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pdp.audit import MemoryDecisionLog
from pdp.audit.chain.checkpoint import Checkpoint, make_checkpoint, write_checkpoint
from pdp.audit.chain.hashchain import seal
from pdp.audit.chain.verify import VerifyReport, verify_log
from pdp.audit.store import DecisionStore
from tests.audit.sqlraw import RawSql, text_of

MakeRecord = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def fill(store: DecisionStore, make_record: MakeRecord, n: int) -> list[dict[str, Any]]:
    return [store.append_sync(make_record(decision="deny" if i % 2 else "allow"))
            for i in range(n)]


def check(store: DecisionStore, key: Ed25519PrivateKey) -> VerifyReport:
    return verify_log(store, public_key=key.public_key())


def broken_at(report: VerifyReport) -> tuple[bool, str | None, int | None]:
    return report.ok, report.problem, report.first_broken_seq


def test_intact_log_with_checkpoints_verifies_signed(sql_store: DecisionStore, key: Any,
                                                     make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 5)
    write_checkpoint(sql_store, key, kind="periodic")  # type: ignore[arg-type]
    last = fill(sql_store, make_record, 5)[-1]
    write_checkpoint(sql_store, key, kind="shutdown")  # type: ignore[arg-type]
    report = check(sql_store, key)
    assert report.ok and report.signatures == "signed" and report.checked == 10
    assert (report.last_seq, report.head_hash) == (10, last["hash"])
    assert report.checkpoints == 2 and report.checkpoint is not None
    assert report.checkpoint["seq"] == 10 and report.checkpoint["kind"] == "shutdown"
    assert report.as_dict()["ok"] is True and json.dumps(report.as_dict())


def test_modified_record_is_a_hash_mismatch_at_its_seq(sql_store: DecisionStore, key: Any,
                                                       make_record: MakeRecord) -> None:
    stored = fill(sql_store, make_record, 10)
    write_checkpoint(sql_store, key)  # type: ignore[arg-type]
    forged = {**stored[4], "decision": "allow" if stored[4]["decision"] == "deny" else "deny"}
    with RawSql(sql_store) as raw:
        raw.execute("UPDATE decisions SET record = ?, decision = ? WHERE seq = 5",
                    (text_of(forged), forged["decision"]))
    report = check(sql_store, key)
    assert broken_at(report) == (False, "hash mismatch", 5)
    assert report.first_broken_decision_id == stored[4]["decision_id"]
    assert "seq 5" in report.detail


def test_deleted_middle_record_is_a_sequence_gap(sql_store: DecisionStore, key: Any,
                                                 make_record: MakeRecord) -> None:
    stored = fill(sql_store, make_record, 10)
    with RawSql(sql_store) as raw:
        raw.execute("DELETE FROM decisions WHERE seq = 5")
    report = check(sql_store, key)
    assert broken_at(report) == (False, "sequence gap", 5)
    assert report.first_broken_decision_id == stored[5]["decision_id"]  # found in its place


def test_reordered_records_are_out_of_order(sql_store: DecisionStore, key: Any,
                                            make_record: MakeRecord) -> None:
    stored = fill(sql_store, make_record, 10)
    with RawSql(sql_store) as raw:  # swap the rows' places, keep their content
        raw.execute("UPDATE decisions SET seq = -4 WHERE seq = 4")
        raw.execute("UPDATE decisions SET seq = 4 WHERE seq = 7")
        raw.execute("UPDATE decisions SET seq = 7 WHERE seq = -4")
    report = check(sql_store, key)
    assert broken_at(report) == (False, "out of order", 4)
    assert report.first_broken_decision_id == stored[6]["decision_id"]


@pytest.mark.parametrize("cut", [1, 3])
def test_truncated_tail_is_caught_by_the_checkpoint(sql_store: DecisionStore, key: Any,
                                                    make_record: MakeRecord, cut: int) -> None:
    fill(sql_store, make_record, 10)
    write_checkpoint(sql_store, key, kind="periodic")  # type: ignore[arg-type]
    with RawSql(sql_store) as raw:
        raw.execute("DELETE FROM decisions WHERE seq > ?", (10 - cut,))
    assert sql_store.verify().ok  # the chain alone cannot see it
    report = check(sql_store, key)
    assert broken_at(report) == (False, "truncated", 10 - cut + 1)
    assert report.last_seq == 10 - cut and f"{cut} record(s) are missing" in report.detail


def test_everything_deleted_is_truncation_at_seq_1(sql_store: DecisionStore, key: Any,
                                                   make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 3)
    write_checkpoint(sql_store, key)  # type: ignore[arg-type]
    with RawSql(sql_store) as raw:
        raw.execute("DELETE FROM decisions")
    assert broken_at(check(sql_store, key)) == (False, "truncated", 1)


def test_rewritten_and_rehashed_chain_disagrees_with_the_checkpoint(
        sql_store: DecisionStore, key: Any, make_record: MakeRecord) -> None:
    stored = fill(sql_store, make_record, 8)
    write_checkpoint(sql_store, key)  # type: ignore[arg-type]
    # Flip decision 3 and re-seal every record from there: a chain that checks out.
    records = [{k: v for k, v in r.items()} for r in stored]
    records[2]["decision"] = "allow" if records[2]["decision"] == "deny" else "deny"
    head = records[1]["hash"]
    with RawSql(sql_store) as raw:
        for i in range(2, 8):
            sealed = seal(records[i], i + 1, head)
            raw.execute("UPDATE decisions SET record = ?, decision = ?, prev_hash = ?, hash = ? "
                        "WHERE seq = ?", (text_of(sealed), sealed["decision"],
                                          sealed["prev_hash"], sealed["hash"], i + 1))
            head = sealed["hash"]
    assert sql_store.verify().ok  # the chain alone is consistent again
    report = check(sql_store, key)
    assert broken_at(report) == (False, "checkpoint mismatch", 8)
    assert report.first_broken_decision_id == stored[7]["decision_id"]


def test_forged_checkpoint_signature_is_caught(sql_store: DecisionStore, key: Any,
                                               make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 6)
    good = write_checkpoint(sql_store, key)  # type: ignore[arg-type]
    forged = Checkpoint(good.seq + 4, "ab" * 32, good.timestamp, "periodic", good.key_id,
                        good.signature)  # another head under the old signature
    sql_store.add_checkpoint(forged)  # type: ignore[attr-defined]
    report = check(sql_store, key)
    assert broken_at(report) == (False, "bad checkpoint signature", 10)
    assert "does not verify" in report.detail


def test_checkpoint_signed_by_another_key_is_caught(sql_store: DecisionStore, key: Any,
                                                    make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 4)
    write_checkpoint(sql_store, Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    report = check(sql_store, key)
    assert broken_at(report) == (False, "bad checkpoint signature", 4)
    assert "not by the configured key" in report.detail


def test_without_a_public_key_the_report_says_unsigned(sql_store: DecisionStore,
                                                       make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 3)
    sql_store.add_checkpoint(make_checkpoint(3, sql_store.head()[1],  # type: ignore[attr-defined]
                                             kind="manual", key=None))
    report = verify_log(sql_store, public_key=None)
    assert report.ok and report.signatures == "unsigned" and report.key_id is None
    assert any("not checked" in note for note in report.notes)


def test_an_unsigned_checkpoint_fails_a_signed_verification(sql_store: DecisionStore, key: Any,
                                                            make_record: MakeRecord) -> None:
    fill(sql_store, make_record, 3)
    sql_store.add_checkpoint(make_checkpoint(3, sql_store.head()[1],  # type: ignore[attr-defined]
                                             kind="manual", key=None))
    assert broken_at(check(sql_store, key)) == (False, "bad checkpoint signature", 3)


def test_empty_log_verifies(sql_store: DecisionStore, key: Any) -> None:
    report = check(sql_store, key)
    assert report.ok and report.checked == 0 and report.first_seq is None


def test_memory_store_gets_the_chain_check_with_a_note(make_record: MakeRecord,
                                                       key: Any) -> None:
    log = MemoryDecisionLog()
    log.append_sync(make_record())
    report = verify_log(log, public_key=key.public_key())
    assert report.ok and report.checked == 1 and report.checkpoints == 0
    assert any("no checkpoints" in note for note in report.notes)
