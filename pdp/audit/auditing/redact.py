"""Redact configured parts of a request before its decision is logged.

Some request context should not sit in an audit log at all: a card number a
PEP forwards, a resource attribute holding a national id. The configuration
names them with JSON Pointers (`RFC 6901 <https://www.rfc-editor.org/rfc/rfc6901>`_)
into the request as the PEP sent it (the ``/v1/authorize`` body without its
subject)::

    [audit]
    redact = ["/context/card_number", "/resource/attrs/ssn"]

Each pointer that matched is *erased* (the member is removed, not masked)
before the record is written and hashed, and the record lists the erased
pointers in ``redacted``, as OPA's decision log lists them in ``erased``. A
pointer that matches nothing is not listed. A redacted record says so, and a
replay of it may not reproduce the decision (the erased values are gone).

Only the PEP's ``context`` and the resource's ``attrs`` may be redacted: the
principal, action and resource id are what the log is for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The pointer syntax sits below the configuration, which checks [audit] redact with it.
from pdp.pointers import (
    REDACTABLE_ROOTS,
    BadPointer,
    check_redaction_pointer,
    format_pointer,
    parse_pointer,
)


@dataclass(frozen=True, slots=True)
class Redactor:
    """Erases the configured pointers from a logged request; see the module docstring.

    ## Example

    >>> r = Redactor.from_pointers(["/context/card_number"])
    >>> r.redact({"action": "pay", "context": {"card_number": "4111", "amount": 5}})
    ({'action': 'pay', 'context': {'amount': 5}}, ['/context/card_number'])
    """

    pointers: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def from_pointers(cls, pointers: Sequence[str]) -> Redactor:
        """Check every pointer (raising :class:`BadPointer` naming the first bad one)."""
        return cls(tuple(check_redaction_pointer(p) for p in pointers))

    def __bool__(self) -> bool:
        return bool(self.pointers)

    def redact(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``request`` with the pointers erased, and the pointers that matched (in config order).

        ``request`` is never modified: containers on the path to an erased
        value are copied, everything else is shared.
        """
        out: Any = dict(request)
        erased: list[str] = []
        for tokens in self.pointers:
            out, hit = _erase(out, tokens)
            if hit:
                erased.append(format_pointer(tokens))
        return out, erased


def _erase(node: Any, tokens: tuple[str, ...]) -> tuple[Any, bool]:
    """A copy of ``node`` without the value at ``tokens`` (copy on write), and whether it
    existed."""
    head, rest = tokens[0], tokens[1:]
    if isinstance(node, Mapping):
        if head not in node:
            return node, False
        if not rest:
            return {k: v for k, v in node.items() if k != head}, True
        child, hit = _erase(node[head], rest)
        return ({**node, head: child}, True) if hit else (node, False)
    if isinstance(node, list):
        index = _array_index(head, len(node))
        if index is None:
            return node, False
        if not rest:
            return node[:index] + node[index + 1:], True
        child, hit = _erase(node[index], rest)
        return (node[:index] + [child] + node[index + 1:], True) if hit else (node, False)
    return node, False


def _array_index(token: str, length: int) -> int | None:
    # RFC 6901: an array index is "0" or digits without a leading zero; "-" (past the end)
    # never names an existing element.
    if not token.isdigit() or (len(token) > 1 and token[0] == "0") or not token.isascii():
        return None
    index = int(token)
    return index if index < length else None


__all__ = ["REDACTABLE_ROOTS", "BadPointer", "Redactor", "check_redaction_pointer",
           "format_pointer", "parse_pointer"]
