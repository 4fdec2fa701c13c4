"""RFC 6901 JSON Pointers, and where a redaction pointer may point.

A leaf module (it imports nothing of the PDP): the configuration checks
``[audit] redact`` with :func:`check_redaction_pointer` when it loads, and the
decision log's redactor (``pdp.audit.auditing.redact``) erases what the pointers name.
Ref: https://www.rfc-editor.org/rfc/rfc6901
"""

from __future__ import annotations

from collections.abc import Sequence

REDACTABLE_ROOTS: tuple[tuple[str, ...], ...] = (("context",), ("resource", "attrs"))
"""Where a redaction pointer may point: inside the PEP's context or the resource's attributes."""


class BadPointer(ValueError):
    """A redaction pointer is not an RFC 6901 JSON Pointer, or points outside what may be
    redacted."""


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 pointer: ``"/a~1b/c~0d"`` -> ``("a/b", "c~d")``.

    ``~1`` stands for ``/`` and ``~0`` for ``~`` (decoded in that order, so
    ``~01`` is ``~1``). The empty pointer (the whole document) is refused here:
    there is nothing useful to redact at the root.
    """
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise BadPointer(f"{pointer!r} is not a JSON Pointer: it must start with '/'")
    tokens = []
    for raw in pointer[1:].split("/"):
        rest = raw.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise BadPointer(f"{pointer!r}: '~' must be followed by 0 or 1 (RFC 6901)")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def format_pointer(tokens: Sequence[str]) -> str:
    """The pointer text for ``tokens`` (the inverse of :func:`parse_pointer`)."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def check_redaction_pointer(pointer: str) -> tuple[str, ...]:
    """Parse ``pointer`` and make sure it lies strictly inside ``/context`` or
    ``/resource/attrs``."""
    tokens = parse_pointer(pointer)
    for root in REDACTABLE_ROOTS:
        if tokens[:len(root)] == root and len(tokens) > len(root):
            return tokens
    raise BadPointer(f"{pointer!r}: only members of /context/... or /resource/attrs/... "
                     "may be redacted")


__all__ = ["REDACTABLE_ROOTS", "BadPointer", "check_redaction_pointer", "format_pointer",
           "parse_pointer"]
