"""Verify a decision log: its hash chain, its signed checkpoints and its retention anchor.

One function, :func:`verify_log`, serves ``pdp audit verify`` and
``GET /v1/audit/verify``. It reads top to bottom:

1. check every checkpoint's signature (with ``public_key``; without one the
   report says ``"unsigned"`` and checkpoints are taken as they are);
2. find where the chain starts: genesis, or, when retention removed the
   oldest records, the ``anchor`` checkpoint at the seq just before the first
   stored record;
3. walk the chain from there (the store's own check, which for SQL stores
   also compares the query columns with each record);
4. compare the chain with every checkpoint: a record whose hash differs from
   a checkpoint's, or a head below the newest checkpoint (a cut-off tail).

The report names the *first* broken link: its ``seq``, the ``decision_id``
found there (if any) and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pdp.audit.chain.checkpoint import Checkpoint, CheckpointStore, key_id
from pdp.audit.chain.hashchain import (
    GENESIS,
    ChainChecker,
    ChainReport,
    export_line_text,
    verify_chain,
)

VerifyProblem = Literal[
    "hash mismatch", "prev_hash mismatch", "sequence gap", "out of order", "malformed record",
    "index mismatch",  # the chain's own problems (pdp.audit.chain.hashchain.Problem)
    "bad checkpoint signature",  # a checkpoint was forged or altered
    "checkpoint mismatch",  # the record at a checkpoint's seq has another hash: rewritten
    "truncated",  # the log ends below a checkpoint's seq: its tail was cut off
    "rollup mismatch",  # an hourly rollup differs from the rows (pdp.audit.rollup_check)
]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_log` found.

    ``signatures`` is ``"signed"`` when checkpoint signatures were checked
    with a public key, ``"unsigned"`` when no key was given (then checkpoints
    count only as unsigned hints). ``first_seq``..``last_seq`` is the stretch
    of the chain checked, from ``anchor_seq`` (set when retention removed
    older records). ``checkpoint`` is the newest checkpoint the log agrees with.
    On failure ``first_broken_seq``, ``first_broken_decision_id``, ``problem``
    and ``detail`` say where and what.
    """

    ok: bool
    signatures: Literal["signed", "unsigned"]
    checked: int
    first_seq: int | None
    last_seq: int
    head_hash: str
    anchor_seq: int | None = None
    checkpoints: int = 0
    checkpoint: dict[str, Any] | None = None
    key_id: str | None = None
    first_broken_seq: int | None = None
    first_broken_decision_id: str | None = None
    problem: VerifyProblem | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Shared(TypedDict):
    """The fields every report of one :func:`verify_log` run shares (passed as ``**base``)."""

    signatures: Literal["signed", "unsigned"]
    key_id: str | None
    checkpoints: NotRequired[int]


def verify_log(store: Any, *, public_key: Ed25519PublicKey | None) -> VerifyReport:
    """Check ``store`` (any ``QueryableLog``) end to end; see the module docstring.

    Stores without checkpoints (the in-memory one) get the chain check only,
    with a note saying so.
    """
    signatures: Literal["signed", "unsigned"] = "signed" if public_key is not None else "unsigned"
    base = _Shared(signatures=signatures, key_id=key_id(public_key) if public_key else None)
    if not isinstance(store, CheckpointStore):
        chain = store.verify()
        return _from_chain(chain, base, first_seq=1 if chain.last_seq or not chain.ok else None,
                           notes=["this store keeps no checkpoints: a cut-off tail would not show"])
    checkpoints = store.checkpoints()
    base["checkpoints"] = len(checkpoints)
    notes: list[str] = []
    if public_key is None:
        notes.append("no checkpoint public key configured: checkpoint signatures not checked")

    # 1. Signatures.
    if public_key is not None:
        for cp in checkpoints:
            if (why := cp.verify(public_key)) is not None:
                return VerifyReport(
                    ok=False, checked=0, first_seq=None, last_seq=0, head_hash=GENESIS,
                    first_broken_seq=cp.seq, problem="bad checkpoint signature",
                    detail=f"{cp.kind} checkpoint at seq {cp.seq} ({cp.timestamp}): {why}",
                    notes=notes, **base)

    # 2. Where the chain starts.
    first = store.first_seq()
    start_seq, start_hash, anchor_seq = 1, GENESIS, None
    if first is not None and first > 1:
        anchors = [cp for cp in checkpoints if cp.kind == "anchor" and cp.seq == first - 1]
        if anchors:
            anchor = anchors[-1]
            start_seq, start_hash, anchor_seq = anchor.seq + 1, anchor.head_hash, anchor.seq
            notes.append(f"records up to seq {anchor.seq} were removed by retention; "
                         f"verified from the anchor at seq {anchor.seq} ({anchor.timestamp})")
        # else: the walk from genesis reports a sequence gap at seq 1.

    # 3. The chain.
    if start_seq == 1:
        chain = store.verify()
    else:
        chain = store.verify(start_seq=start_seq, start_hash=start_hash)
    if not chain.ok:
        return _from_chain(chain, base, first_seq=first, anchor_seq=anchor_seq, notes=notes)

    # 4. The chain against the checkpoints, lowest seq first.
    last_seq = chain.last_seq
    relevant = [cp for cp in checkpoints if cp.seq >= start_seq - 1]
    stored = store.hashes_at(cp.seq for cp in relevant if start_seq <= cp.seq <= last_seq)
    agreed: Checkpoint | None = None
    expected: str | None
    rid: str | None
    for cp in sorted(relevant, key=lambda c: c.seq):
        if cp.seq > last_seq:
            return _broken(chain, base, first, anchor_seq, notes, seq=last_seq + 1,
                           decision_id=None, problem="truncated",
                           detail=f"the log ends at seq {last_seq}, but a {cp.kind} checkpoint "
                                  f"of {cp.timestamp} covers seq {cp.seq}: "
                                  f"{cp.seq - last_seq} record(s) are missing from the tail")
        if cp.seq == 0 or cp.seq == start_seq - 1:
            expected, rid = (GENESIS if cp.seq == 0 else start_hash), None
        else:
            expected, rid = stored.get(cp.seq, (None, None))
        if expected != cp.head_hash:
            return _broken(chain, base, first, anchor_seq, notes, seq=cp.seq, decision_id=rid,
                           problem="checkpoint mismatch",
                           detail=f"record {cp.seq} hashes to {expected}, but the {cp.kind} "
                                  f"checkpoint of {cp.timestamp} signed {cp.head_hash}: "
                                  "the log was rewritten from there on or before")
        agreed = cp
    return VerifyReport(
        ok=True, checked=chain.checked, first_seq=first, last_seq=last_seq,
        head_hash=chain.head_hash, anchor_seq=anchor_seq,
        checkpoint=agreed.as_dict() if agreed else None,
        detail=f"{chain.checked} record(s) verified" + (
            f"; newest checkpoint at seq {agreed.seq} agrees" if agreed else "; no checkpoint"),
        notes=notes, **base)


def verify_records(records: Any, *, start_seq: int = 1, start_hash: str = GENESIS) -> ChainReport:
    """The chain check alone over records given as dicts, in stored order (e.g. the
    parsed lines of an export; each record's stored text is rebuilt, which holds
    for chain format 2: see :func:`pdp.audit.chain.hashchain.link_hash`)."""
    return verify_chain(records, start_seq=start_seq, start_hash=start_hash)


def verify_export(lines: Iterable[str]) -> ChainReport:
    """Check an export's JSON lines (``pdp audit export``) as a chain, from its first record.

    Each line's hash must cover the text it stores (see
    :func:`pdp.audit.chain.hashchain.export_line_text`) and link to the line before.
    An export proves itself only from its first record on: compare its first
    ``prev_hash`` or its head with a checkpoint, or with the log, to tie it to
    more. A ``kind`` filter leaves gaps in ``seq``; a time range does not.
    """
    checker: ChainChecker | None = None
    for line in lines:
        try:
            record: Any = json.loads(line)
        except ValueError:
            record = None
        text = export_line_text(line, record) if isinstance(record, dict) else None
        if text is None:
            record = None  # not a record: malformed
        if checker is None:  # the export starts where its first record says
            first = record or {}
            seq, prev = first.get("seq"), first.get("prev_hash")
            checker = (ChainChecker(start_seq=seq, start_hash=prev)
                       if isinstance(seq, int) and isinstance(prev, str) else ChainChecker())
        if (report := checker.feed(record, text)) is not None:
            return report
    return (checker or ChainChecker()).finish()


def _from_chain(chain: ChainReport, base: _Shared, *, first_seq: int | None,
                anchor_seq: int | None = None, notes: list[str] | None = None) -> VerifyReport:
    return VerifyReport(
        ok=chain.ok, checked=chain.checked, first_seq=first_seq, last_seq=chain.last_seq,
        head_hash=chain.head_hash, anchor_seq=anchor_seq,
        first_broken_seq=chain.first_broken_seq,
        first_broken_decision_id=chain.first_broken_decision_id, problem=chain.problem,
        detail=chain.detail or f"{chain.checked} record(s) verified", notes=list(notes or []),
        **base)


def _broken(chain: ChainReport, base: _Shared, first: int | None, anchor_seq: int | None,
            notes: list[str], *, seq: int, decision_id: str | None, problem: VerifyProblem,
            detail: str) -> VerifyReport:
    return VerifyReport(
        ok=False, checked=chain.checked, first_seq=first, last_seq=chain.last_seq,
        head_hash=chain.head_hash, anchor_seq=anchor_seq, first_broken_seq=seq,
        first_broken_decision_id=decision_id, problem=problem, detail=detail, notes=notes,
        **base)


__all__ = ["VerifyProblem", "VerifyReport", "verify_export", "verify_log", "verify_records"]
