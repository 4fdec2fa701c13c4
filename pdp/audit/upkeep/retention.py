"""Retention: delete the oldest records, and keep what is left verifiable.

Deleting the start of a hash chain leaves a first record whose ``prev_hash``
points at nothing stored: from genesis, verification would report a gap at
seq 1, exactly as if someone had removed records. So before deleting,
retention signs an **anchor**: a checkpoint (kind ``anchor``) at the seq just
before the first record it keeps, with that record's hash. Verification then
starts at the anchor (:func:`pdp.audit.chain.verify.verify_log`); only an anchor,
signed by the checkpoint key, may stand for deleted records.

What is deleted is the longest run of the oldest records (by ``seq``) whose
timestamps are all before the cutoff: records are never deleted out of
order, so a spooled record shipped late (an old timestamp at a high seq)
waits for its neighbours. The newest record is always kept, so the chain's
head is never lost. The stretch to be deleted is verified first; if it does
not verify, nothing is deleted (``RetentionRefused``) and the evidence stays.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pdp.audit.chain.checkpoint import Checkpoint, CheckpointStore, make_checkpoint
from pdp.audit.chain.hashchain import GENESIS, ChainReport
from pdp.audit.errors import AuditError
from pdp.audit.records import normalize_ts

log = logging.getLogger(__name__)


class RetentionRefused(AuditError):
    """The records to be deleted do not verify: they are kept as evidence."""


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one retention run did: ``deleted`` records up to the ``anchor``'s seq."""

    cutoff: str
    deleted: int
    anchor: Checkpoint | None
    first_kept: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetentionStore(CheckpointStore, Protocol):
    """A checkpoint store that can also cut its oldest records (SQLite, PostgreSQL)."""

    def first_seq_at_or_after(self, ts: str) -> int | None: ...
    def delete_through(self, seq: int) -> int: ...
    def verify(self, *, start_seq: int = 1, start_hash: str = GENESIS,
               end_seq: int | None = None) -> ChainReport: ...


def cutoff_for(days: int, now: datetime | None = None) -> str:
    """The timestamp ``days`` days before ``now`` (UTC), in the log's text form."""
    return normalize_ts((now or datetime.now(UTC)) - timedelta(days=days))


def apply_retention(store: RetentionStore, *, older_than: datetime | str,
                    key: Ed25519PrivateKey | None) -> RetentionResult:
    """Delete the records older than ``older_than`` after signing an anchor with ``key``.

    ``store`` is a :class:`~pdp.audit.chain.checkpoint.CheckpointStore` with
    ``first_seq_at_or_after`` and ``delete_through`` (SQLite, PostgreSQL).
    Without ``key`` the anchor is unsigned, and only an unsigned verification
    accepts it. Raises ``RetentionRefused`` when the stretch does not verify.
    """
    cutoff = normalize_ts(older_than)
    head_seq, _ = store.head()
    first = store.first_seq()
    if head_seq == 0 or first is None:
        return RetentionResult(cutoff, 0, None, None)
    first_kept = store.first_seq_at_or_after(cutoff)
    if first_kept is None or first_kept > head_seq:
        first_kept = head_seq  # everything is old: keep the head all the same
    if first_kept <= first:
        return RetentionResult(cutoff, 0, None, first)
    anchor_seq = first_kept - 1
    digest = _verified_hash_at(store, first, anchor_seq, key)
    anchor = make_checkpoint(anchor_seq, digest, kind="anchor", key=key)
    store.add_checkpoint(anchor)  # first the anchor: a crash now deletes nothing
    deleted = store.delete_through(anchor_seq)
    log.info("retention: deleted %d decision record(s) before %s, anchored at seq %d",
             deleted, cutoff, anchor_seq)
    return RetentionResult(cutoff, deleted, anchor, first_kept)


def _verified_hash_at(store: RetentionStore, first: int, anchor_seq: int,
                      key: Ed25519PrivateKey | None) -> str:
    """The hash of record ``anchor_seq``, after checking the chain from the start up to it."""
    start_seq, start_hash = 1, GENESIS
    checkpoints = store.checkpoints()
    if first > 1:
        anchors = [c for c in checkpoints if c.kind == "anchor" and c.seq == first - 1]
        if not anchors:
            raise RetentionRefused(f"records before seq {first} are missing and no anchor "
                                   "stands for them; run `pdp audit verify`")
        start_seq, start_hash = first, anchors[-1].head_hash
    report = store.verify(start_seq=start_seq, start_hash=start_hash, end_seq=anchor_seq)
    if not report.ok or report.last_seq != anchor_seq:
        raise RetentionRefused(f"the records to delete do not verify: {report.detail or report}")
    public_key = key.public_key() if key is not None else None
    stored = store.hashes_at(c.seq for c in checkpoints if start_seq <= c.seq <= anchor_seq)
    for cp in checkpoints:
        if not start_seq <= cp.seq <= anchor_seq:
            continue
        if public_key is not None and (why := cp.verify(public_key)) is not None:
            raise RetentionRefused(f"checkpoint at seq {cp.seq}: {why}")
        if stored.get(cp.seq, (None,))[0] != cp.head_hash:
            raise RetentionRefused(f"record {cp.seq} disagrees with its checkpoint")
    return report.head_hash


__all__ = ["RetentionRefused", "RetentionResult", "apply_retention", "cutoff_for"]
