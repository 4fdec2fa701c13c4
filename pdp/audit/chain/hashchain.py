"""A hash chain over the decision log, so that edits, deletions and reordering show.

Each stored record carries ``seq`` (1, 2, 3, ... without gaps), ``prev_hash``
(the ``hash`` of record ``seq - 1``, or :data:`GENESIS` for the first) and
``hash`` = SHA-256 over ``prev_hash``, a newline and the record's JSON text
*exactly as stored*: ``{"seq":N,`` and then the rest of the record, keys sorted
(see :func:`stored_text`); ``prev_hash`` and ``hash`` are kept beside it.
Changing one byte of a record breaks its own hash; deleting or moving one
breaks the link to its neighbour. This is the construction of RFC 6962's tree
heads in its simplest, linear form.

Because the hash covers the stored bytes, a verifier in any language hashes
what it reads and never has to re-serialize JSON the way this code did.
Records written before chain format 2 stored their chain keys inside the text
and hashed :func:`canonical` of the rest; they still verify by that rule
(:func:`chain_format` tells the two apart).

What a chain alone cannot show is a cut-off tail: drop the newest records and
what remains is a valid, shorter chain. Publish :attr:`ChainReport.head_hash`
and :attr:`ChainReport.last_seq` somewhere else from time to time (an anchor),
and compare.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

GENESIS = "0" * 64
"""``prev_hash`` of the first record: there is nothing before it."""

CHAIN_KEYS = ("seq", "prev_hash", "hash")
"""Keys the store adds; they are not part of the hashed content."""

Problem = Literal[
    "hash mismatch",  # the record's content was changed
    "prev_hash mismatch",  # a record before it was removed, or re-hashed after a change
    "sequence gap",  # a seq is missing: a record was deleted
    "out of order",  # records were moved
    "malformed record",  # not a dict, or the chain keys are missing
    "index mismatch",  # (SQLite) a query column disagrees with the record it indexes
]


def canonical(obj: Any) -> str:
    """One JSON text per value: sorted keys, no spaces, UTF-8 kept as is.

    Two equal values always give the same text, whatever the key order they
    were built in: what checkpoints sign and what chain format 1 hashed
    (format 2 hashes the stored text itself, see :func:`record_text`). NaN
    and infinities are refused: they are not JSON, and no other store or
    language would read them back.

    The definition is :func:`reference_canonical` (Python's ``json`` with those
    settings). orjson writes the same text four times faster for almost every
    value, so it is tried first and its text is used only when it provably
    is that text (see :func:`orjson_text`).
    """
    text = orjson_text(obj)
    return text if text is not None else reference_canonical(obj)


def reference_canonical(obj: Any) -> str:
    """The canonical text as Python's ``json`` writes it: what checkpoint signatures and
    chain format 1's hashes are defined over."""
    return _ENCODER.encode(obj)


# json.dumps(obj, sort_keys=True, ...) builds this same encoder on every call; reuse one.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)

_ORJSON_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                   | orjson.OPT_PASSTHROUGH_DATACLASS)
# orjson writes floats below 1e-4 differently ("1e-7", "0.00001"; Python: "1e-07",
# "1e-05"): a number ending in a one-digit negative exponent, or starting "0.0000".
_TINY_FLOAT_EXPONENT = re.compile(rb"e-\d[,}\]]")  # literal prefix: a fast scan
_TINY_FLOAT_POSITIONAL = b"0.0000"


def _tiny_float_shows(data: bytes) -> bool:
    """Whether orjson's text may hold a float below 1e-4 (strings may look alike: then yes)."""
    at = data.find(_TINY_FLOAT_POSITIONAL)
    while at > 0:
        if data[at - 1] in b":,[-":  # where a number starts, not inside "10.000000Z"
            return True
        at = data.find(_TINY_FLOAT_POSITIONAL, at + 1)
    return _TINY_FLOAT_EXPONENT.search(data) is not None


def _refuse(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def orjson_text(obj: Any) -> str | None:
    """orjson's text for ``obj`` when it equals the reference text, else None.

    Equal because: keys sort alike (UTF-8 byte order is code-point order),
    strings escape alike, integers and floats of 1e-4 or more print alike
    (shortest round-trip digits, same exponent form); the text parses back to
    ``obj`` itself, which rules out what orjson writes but Python refuses or
    writes otherwise (NaN as null, UUIDs, enums, tuples, non-string keys, big
    integers); and no float below 1e-4 shows. The property test in
    ``tests/audit/test_audit_hashchain.py`` holds it to that.
    """
    try:
        data = orjson.dumps(obj, option=_ORJSON_OPTIONS, default=_refuse)
    except TypeError:  # not JSON to orjson: let the reference decide
        return None
    if _tiny_float_shows(data):
        return None
    if orjson.loads(data) != obj:
        return None
    return data.decode()


def body(record: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed part of a record: everything except :data:`CHAIN_KEYS`."""
    return {k: v for k, v in record.items() if k not in CHAIN_KEYS}


_RECORD_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def record_text(body: Any) -> str:
    """The JSON text a record body is stored (and hashed) as: keys sorted, no spaces.

    orjson writes it, so this is fast, and whatever it writes is the record
    from then on: NaN and infinities become ``null``, UUIDs strings, enums
    their values, dataclasses objects, as orjson does. Datetimes are refused (a
    record holds RFC 3339 strings, never objects a reader could not get back). What
    orjson refuses, integers beyond 64 bits say, Python's ``json`` writes if
    that text reads back to the value itself (not so for non-string keys);
    otherwise ``TypeError``/``ValueError``. Either way the text reads back and
    re-serializes to itself, which :func:`link_hash` relies on.
    """
    try:
        return orjson.dumps(body, option=_RECORD_OPTIONS, default=_refuse).decode()
    except TypeError:
        pass
    text = reference_canonical(body)  # TypeError/ValueError: not JSON at all
    text.encode()  # lone surrogates: UnicodeEncodeError, a ValueError
    if json.loads(text) != body:
        raise ValueError("record does not read back as written (non-string keys?)")
    return text


def stored_text(seq: int, body_json: str) -> str:
    """Chain format 2's stored (and hashed) text: ``"seq"`` first, then the body's members.

    The seq is inside so that a record names its own place (a moved record shows
    as moved) and is covered by its hash.
    """
    rest = body_json[1:]
    return f'{{"seq":{seq},{rest}' if rest != "}" else f'{{"seq":{seq}}}'


# A fresh hash object, copied per link: cheaper than hashlib.sha256(), which sets
# OpenSSL's digest up anew on every call. Never updated itself, so copying it from
# several threads (the writer, a verification) is safe.
_SHA256 = hashlib.sha256()


def hash_body(prev_hash: str, body_json: str) -> str:
    """SHA-256 hex of ``prev_hash + "\\n" + body_json``: the link over a hashed text."""
    digest = _SHA256.copy()
    digest.update(f"{prev_hash}\n{body_json}".encode())
    return digest.hexdigest()


def link_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """The ``hash`` a record given as a dict has after ``prev_hash``.

    Over its :func:`stored_text` rebuilt from ``seq`` and the body's
    :func:`record_text`: the text that was stored, for every record this
    version stored (that text reads back and re-serializes to itself).
    """
    return hash_body(prev_hash, stored_text(record["seq"], record_text(body(record))))


def chain_format(record: Mapping[str, Any]) -> int:
    """1 for a stored record (parsed) that holds its chain keys inside, else 2 (only ``seq``)."""
    return 1 if "hash" in record or "prev_hash" in record else 2


def hashed_text(stored: str, record: Mapping[str, Any]) -> str | None:
    """The text a stored row's hash covers; ``record`` is ``stored`` parsed.

    Chain format 2: the stored text itself. Format 1: :func:`canonical` of the
    rest. None if format 1's text cannot be rebuilt.
    """
    if chain_format(record) == 2:
        return stored
    try:
        return canonical(body(record))
    except (TypeError, ValueError):
        return None


_EXPORT_TAIL = re.compile(r',"prev_hash":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}\Z')


def export_line(stored: str, record: Mapping[str, Any], prev_hash: str, digest: str) -> str:
    """A stored row as one export line; ``record`` is ``stored`` parsed.

    Format 2: the stored text with ``,"prev_hash":"…","hash":"…"`` put before
    its closing brace, so the line is the whole record as a JSON object and
    :func:`export_line_text` gets the hashed text back by cutting them off.
    Format 1 holds its chain keys already: the stored text is its own line.
    """
    if chain_format(record) == 2 and stored.endswith("}"):
        return f'{stored[:-1]},"prev_hash":"{prev_hash}","hash":"{digest}"}}'
    return stored


def export_line_text(line: str, record: Mapping[str, Any]) -> str | None:
    """The text an export line's hash covers (the inverse of :func:`export_line`);
    ``record`` is ``line`` parsed.

    A format-2 line (``{"seq":`` ... the two hashes at its end): the line with
    them cut off again. A format-1 line is the stored text itself
    (:func:`hashed_text`). None if neither can be rebuilt.
    """
    if line.startswith('{"seq":') and (tail := _EXPORT_TAIL.search(line)) is not None:
        return line[:tail.start()] + "}"
    return hashed_text(line, record) if chain_format(record) == 1 else None


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of checking a chain from its first record.

    ``first_broken_seq`` is the seq at which the chain stops linking, and
    ``first_broken_decision_id`` the ``decision_id`` of the record found there
    (for a gap: the record found where the missing one should have been).
    ``last_seq``/``head_hash`` describe the last record that checked out: the
    values to anchor elsewhere.
    """

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_decision_id: str | None = None
    problem: Problem | None = None
    detail: str = ""
    last_seq: int = 0
    head_hash: str = GENESIS


class ChainChecker:
    """Checks records one at a time, in the order the store keeps them.

    Incremental so a store can stream millions of rows and interleave its own
    checks. A seq that jumps ahead is either a deletion or a move; which one is
    decided by the next record (a move brings a lower seq back later), so a
    jump is held as *pending* for one record.
    """

    def __init__(self, *, start_seq: int = 1, start_hash: str = GENESIS) -> None:
        self.checked = 0
        self.expected_seq = start_seq
        self.head_hash = start_hash
        self.pending: tuple[int, dict[str, Any]] | None = None  # (expected seq, record found)

    def feed(self, record: Any, text: str | None = None) -> ChainReport | None:
        """Check the next record; a report means the chain is broken (stop feeding).

        ``text`` is what its hash covers, as stored (see :func:`hashed_text`);
        None for a record known only as a dict (see :func:`link_hash`).
        """
        if self.pending is not None:
            expected, found = self.pending
            later_seq = record.get("seq") if isinstance(record, dict) else None
            moved = isinstance(later_seq, int) and later_seq < found["seq"]
            return self._broken(expected, found, "out of order" if moved else "sequence gap")
        if not isinstance(record, dict) or not all(k in record for k in CHAIN_KEYS) \
                or not isinstance(record["seq"], int):
            rid = record.get("decision_id") if isinstance(record, dict) else None
            return self._broken(self.expected_seq, {"decision_id": rid}, "malformed record")
        seq = record["seq"]
        if seq < self.expected_seq:
            return self._broken(self.expected_seq, record, "out of order")
        if seq > self.expected_seq:
            self.pending = (self.expected_seq, record)
            return None
        if record["prev_hash"] != self.head_hash:
            return self._broken(seq, record, "prev_hash mismatch")
        try:
            expected_hash = (link_hash(self.head_hash, record) if text is None
                             else hash_body(self.head_hash, text))
        except (TypeError, ValueError):  # not JSON-able: cannot be what was stored
            return self._broken(seq, record, "malformed record")
        if expected_hash != record["hash"]:
            return self._broken(seq, record, "hash mismatch")
        self.checked += 1
        self.expected_seq += 1
        self.head_hash = record["hash"]
        return None

    def finish(self) -> ChainReport:
        """The report once every record was fed."""
        if self.pending is not None:
            expected, found = self.pending
            return self._broken(expected, found, "sequence gap")
        return ChainReport(ok=True, checked=self.checked, last_seq=self.expected_seq - 1,
                           head_hash=self.head_hash)

    def _broken(self, seq: int, found: Mapping[str, Any], problem: Problem) -> ChainReport:
        rid = found.get("decision_id")
        detail = f"chain broken at seq {seq}: {problem}"
        if problem in ("sequence gap", "out of order"):
            detail += f" (found seq {found.get('seq')!r} where {seq} was expected)"
        return ChainReport(
            ok=False, checked=self.checked, first_broken_seq=seq,
            first_broken_decision_id=rid if isinstance(rid, str) else None,
            problem=problem, detail=detail, last_seq=self.expected_seq - 1,
            head_hash=self.head_hash)


def verify_chain(records: Iterable[Any], *, start_seq: int = 1,
                 start_hash: str = GENESIS) -> ChainReport:
    """Check that ``records`` (in stored order) form one unbroken chain from ``start_seq``.

    Stops at the first break and names it; see :data:`Problem` for the kinds.
    """
    checker = ChainChecker(start_seq=start_seq, start_hash=start_hash)
    for record in records:
        if (report := checker.feed(record)) is not None:
            return report
    return checker.finish()


def verify_stored(rows: Iterable[Mapping[str, Any]],
                  columns_disagree: Callable[[Mapping[str, Any], Any], bool], *,
                  start_seq: int = 1, start_hash: str = GENESIS) -> ChainReport:
    """Verify stored rows (query columns plus the ``record`` JSON text), in seq order.

    Besides the chain over the records, each row's query columns must agree with its
    record (as ``columns_disagree`` judges for the store's column encoding): a column
    changed in place (say ``decision`` flipped) would mislead filters without touching
    the chain, so it is reported as ``index mismatch``.
    """
    checker = ChainChecker(start_seq=start_seq, start_hash=start_hash)
    for values in rows:
        record, text = _stored_record(values)
        if (report := checker.feed(record, text)) is not None:
            return report
        if checker.pending is None and columns_disagree(values, record):
            return ChainReport(
                ok=False, checked=checker.checked - 1, first_broken_seq=values["seq"],
                first_broken_decision_id=record.get("decision_id"), problem="index mismatch",
                detail=f"row {values['seq']}: query columns disagree with the record",
                last_seq=checker.expected_seq - 2, head_hash=record["prev_hash"])
    return checker.finish()


def _stored_record(values: Mapping[str, Any]) -> tuple[Any, str | None]:
    """A row as the checker reads it: the record with its chain keys, and its hashed text."""
    stored = values["record"]
    try:
        record: Any = json.loads(stored)
    except (TypeError, ValueError):
        return None, None
    if not isinstance(record, dict):
        return record, None
    if chain_format(record) == 2:  # prev_hash and hash are the row's columns
        record.update(prev_hash=values["prev_hash"], hash=values["hash"])
        return record, stored
    text = hashed_text(stored, record)
    return (record, text) if text is not None else (None, None)


def seal(record: Mapping[str, Any], seq: int, prev_hash: str) -> dict[str, Any]:
    """The record as stored at ``seq`` after ``prev_hash``: its body plus the chain keys."""
    sealed = body(record)
    sealed["seq"] = seq
    sealed.update(prev_hash=prev_hash, hash=link_hash(prev_hash, sealed))
    return sealed


__all__ = [
    "CHAIN_KEYS", "GENESIS", "ChainChecker", "ChainReport", "Problem", "body", "canonical",
    "chain_format", "export_line", "export_line_text", "hash_body", "hashed_text", "link_hash",
    "orjson_text", "record_text", "reference_canonical", "seal", "stored_text", "verify_chain",
    "verify_stored",
]
