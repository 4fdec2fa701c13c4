"""Signed checkpoints: the log's head, signed from time to time, so a cut-off tail shows.

A hash chain shows edits, deletions and moves *inside* the log, but not a
tail cut off at the end: what remains is a valid, shorter chain (see
:mod:`pdp.audit.chain.hashchain`). A checkpoint fixes the head at one moment:
``{seq, head_hash, timestamp, kind}``, signed with an Ed25519 key
(RFC 8032) that the database does not hold. Whoever can rewrite the
database but not read the key cannot make the log agree with every
checkpoint again, so :func:`pdp.audit.chain.verify.verify_log` reports

- a log whose head is *below* a checkpoint's ``seq``: **truncated**;
- a record whose hash differs from a checkpoint's ``head_hash`` at its
  ``seq``: **checkpoint mismatch** (the chain was rewritten and re-hashed);
- a checkpoint whose signature does not verify: **bad checkpoint signature**.

Kinds: ``periodic`` (every N records or T seconds, see :class:`Checkpointer`),
``shutdown`` (on a clean stop), ``manual`` and ``anchor``: retention writes an
anchor at the seq just before the first record it keeps, and verification
starts from the newest anchor there instead of from genesis
(:mod:`pdp.audit.upkeep.retention`). Only an ``anchor`` may stand for deleted records;
any other checkpoint below the first stored seq is ignored.

Keys: ``[audit] checkpoint_key`` names a PEM (PKCS #8) Ed25519 private key.
``pdp serve --dev`` creates one under ``<state_dir>/dev/`` on first start (with
a warning); outside ``--dev`` and without a key, no checkpoints are written and
verification says ``unsigned``. Auditors verify with the public half only
(``checkpoint_public_key``).

Ref: https://www.rfc-editor.org/rfc/rfc8032 (Ed25519),
https://www.rfc-editor.org/rfc/rfc6962#section-3.5 (signed tree heads, the same idea).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pdp.audit.chain.hashchain import GENESIS, canonical
from pdp.audit.errors import AuditError

if TYPE_CHECKING:
    from pdp.config import Settings

log = logging.getLogger(__name__)

CheckpointKind = Literal["periodic", "shutdown", "manual", "anchor"]
KINDS: tuple[str, ...] = ("periodic", "shutdown", "manual", "anchor")

DEV_KEY_FILE = Path("dev") / "audit-checkpoint-key.pem"
"""Where ``pdp serve --dev`` keeps its checkpoint key, under ``state_dir``."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The log's head at one moment: record ``seq`` had hash ``head_hash``.

    ``signature`` is the base64url Ed25519 signature over :meth:`payload`, by
    the key named ``key_id`` (None for both: an unsigned checkpoint, written
    only when no key is configured). ``seq`` 0 with :data:`GENESIS` is the
    empty log.
    """

    seq: int
    head_hash: str
    timestamp: str
    kind: str = "periodic"
    key_id: str | None = None
    signature: str | None = None

    def payload(self) -> bytes:
        """The signed bytes: canonical JSON of every field but the signature, with a version."""
        return canonical({"v": 1, "seq": self.seq, "head_hash": self.head_hash,
                          "timestamp": self.timestamp, "kind": self.kind,
                          "key_id": self.key_id}).encode()

    def signed_by(self, key: Ed25519PrivateKey) -> Checkpoint:
        """This checkpoint with ``key_id`` and ``signature`` of ``key``."""
        unsigned = Checkpoint(self.seq, self.head_hash, self.timestamp, self.kind,
                              key_id=key_id(key.public_key()))
        return Checkpoint(unsigned.seq, unsigned.head_hash, unsigned.timestamp, unsigned.kind,
                          unsigned.key_id, _b64(key.sign(unsigned.payload())))

    def verify(self, public_key: Ed25519PublicKey) -> str | None:
        """None if the signature is good, else why not (one sentence)."""
        if self.signature is None:
            return "the checkpoint is not signed"
        expected = key_id(public_key)
        if self.key_id != expected:
            return f"signed by key {self.key_id}, not by the configured key {expected}"
        try:
            public_key.verify(_unb64(self.signature), self.payload())
        except (InvalidSignature, ValueError):
            return "the signature does not verify"
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class CheckpointStore(Protocol):
    """What a store offers for checkpoints, retention and anchored verification.

    The SQLite and PostgreSQL stores implement it (table ``checkpoints`` beside
    ``decisions``); the in-memory store does not, so it has neither.
    """

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest committed record; ``(0, GENESIS)`` when empty."""
        ...

    def first_seq(self) -> int | None:
        """The lowest stored ``seq`` (above 1 after retention), None when empty."""
        ...

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint (works after ``close()`` too: the shutdown checkpoint)."""
        ...

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, by ascending ``seq`` (then by time)."""
        ...

    def hashes_at(self, seqs: Iterable[int]) -> dict[int, tuple[str, str]]:
        """``seq -> (hash, decision_id)`` of the stored records among ``seqs``."""
        ...

    def verify(self, *, start_seq: int = 1, start_hash: str = GENESIS) -> Any:
        """The store's chain check (a ``ChainReport``) from ``start_seq`` after ``start_hash``."""
        ...


# -- keys ------------------------------------------------------------------------

def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name for a key: the first 16 hex digits of SHA-256 over its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An unencrypted PEM (PKCS #8) Ed25519 private key; ``ValueError`` for anything else."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot read checkpoint key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"checkpoint key {path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM Ed25519 public key, or the public half of a PEM private key."""
    data = Path(path).read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"cannot read checkpoint public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"checkpoint public key {path} is not an Ed25519 key")
    return key


def generate_key_file(path: Path) -> Ed25519PrivateKey:
    """Create a new Ed25519 key at ``path`` (mode 0600); ``FileExistsError`` if one is there."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return key


def public_pem(public_key: Ed25519PublicKey) -> str:
    """The public key as PEM, to hand to auditors (``checkpoint_public_key``)."""
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def checkpoint_private_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The key that signs checkpoints for ``pdp serve``, or None (checkpoints off).

    ``[audit] checkpoint_key`` if set (a missing or bad file is a ``ValueError``:
    the server refuses to start rather than run unsigned by accident); else,
    with ``--dev`` only, ``<state_dir>/dev/audit-checkpoint-key.pem``, created
    on first start with a warning; else None.
    """
    configured = settings.audit.checkpoint_key
    if configured is not None:
        return load_private_key(configured)
    if not settings.dev:
        return None
    path = settings.state_dir / DEV_KEY_FILE
    try:
        key = generate_key_file(path)
    except FileExistsError:
        return load_private_key(path)
    log.warning("--dev: created a checkpoint signing key at %s; configure "
                "[audit] checkpoint_key outside development", path)
    return key


def checkpoint_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """The key that checks checkpoints (``pdp audit verify``, ``GET /v1/audit/verify``).

    ``checkpoint_public_key`` if set, else the public half of
    ``checkpoint_key``, else the ``--dev`` key if one exists under
    ``state_dir`` (never created here), else None: verification is "unsigned".
    """
    audit = settings.audit
    if audit.checkpoint_public_key is not None:
        return load_public_key(audit.checkpoint_public_key)
    if audit.checkpoint_key is not None:
        return load_private_key(audit.checkpoint_key).public_key()
    dev_key = settings.state_dir / DEV_KEY_FILE
    if dev_key.is_file():
        return load_private_key(dev_key).public_key()
    return None


# -- writing ---------------------------------------------------------------------

def now_ts() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_checkpoint(seq: int, head_hash: str, *, kind: str,
                    key: Ed25519PrivateKey | None, timestamp: str | None = None) -> Checkpoint:
    """A checkpoint of ``(seq, head_hash)``, signed when ``key`` is given."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {', '.join(KINDS)}")
    checkpoint = Checkpoint(seq, head_hash, timestamp or now_ts(), kind)
    return checkpoint.signed_by(key) if key is not None else checkpoint


def write_checkpoint(store: CheckpointStore, key: Ed25519PrivateKey | None, *,
                     kind: str = "manual") -> Checkpoint:
    """Sign the store's current head and store it; returns the checkpoint."""
    seq, head = store.head()
    checkpoint = make_checkpoint(seq, head, kind=kind, key=key)
    store.add_checkpoint(checkpoint)
    return checkpoint


class Checkpointer:
    """Writes a signed checkpoint every ``every_records`` records or ``every_s`` seconds.

    A daemon thread looks at the store's head every ``poll_s`` seconds (so
    "every N records" is checked at that pace, never per record, and costs
    the decision path nothing) and writes a checkpoint when the head moved
    by ``every_records`` since the last one, or moved at all and ``every_s``
    passed. :meth:`close` writes a ``shutdown`` checkpoint; call it after the
    log was closed, so it covers the last record. Works the same with several
    replicas on one PostgreSQL database: each signs the head it sees.
    """

    def __init__(self, store: CheckpointStore, key: Ed25519PrivateKey, *,
                 every_records: int = 1000, every_s: float = 60.0, poll_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if every_records < 1 or every_s <= 0 or poll_s <= 0:
            raise ValueError("checkpoint intervals must be positive")
        self.store = store
        self.key = key
        self.every_records = every_records
        self.every_s = every_s
        self.poll_s = poll_s
        self.clock = clock
        self.written = 0
        self._last_seq = self._latest_seq()
        self._last_time = clock()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one checkpoint at a time (thread and close())
        self._thread = threading.Thread(target=self._run, name="pdp-audit-checkpoints",
                                        daemon=True)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def maybe_checkpoint(self) -> Checkpoint | None:
        """Write a ``periodic`` checkpoint if one is due; the thread calls this."""
        seq, head = self.store.head()
        due = seq > self._last_seq and (
            seq - self._last_seq >= self.every_records
            or self.clock() - self._last_time >= self.every_s)
        return self._write(seq, head, "periodic") if due else None

    def checkpoint_now(self, kind: str = "manual") -> Checkpoint:
        seq, head = self.store.head()
        return self._write(seq, head, kind)

    def close(self) -> None:
        """Stop the thread and sign the final head (``shutdown``), if it moved."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            seq, head = self.store.head()
            if seq > self._last_seq:
                self._write(seq, head, "shutdown")
        except (AuditError, OSError) as exc:
            log.warning("could not write the shutdown checkpoint: %s", exc)

    def _write(self, seq: int, head: str, kind: str) -> Checkpoint:
        with self._lock:
            checkpoint = make_checkpoint(seq, head, kind=kind, key=self.key)
            self.store.add_checkpoint(checkpoint)
            self._last_seq, self._last_time = seq, self.clock()
            self.written += 1
        return checkpoint

    def _latest_seq(self) -> int:
        try:
            found = self.store.checkpoints()
        except AuditError:
            return 0
        return max((c.seq for c in found), default=0)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.maybe_checkpoint()
            except Exception as exc:  # the store is down: try again next time
                log.warning("checkpoint not written: %s", exc)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


__all__ = [
    "DEV_KEY_FILE", "KINDS", "Checkpoint", "CheckpointKind", "CheckpointStore", "Checkpointer",
    "checkpoint_private_key", "checkpoint_public_key", "generate_key_file", "key_id",
    "load_private_key", "load_public_key", "make_checkpoint", "public_pem", "write_checkpoint",
]
