"""Where each policy of a ``*.cedar`` file starts, so that messages can name a line.

Cedar numbers the policies of one parse ``policy0``, ``policy1``, ... in the order
they are written (templates included), and every policy ends with ``;``, which
can appear nowhere else outside a string or a comment
(https://docs.cedarpolicy.com/policies/syntax-grammar.html). Splitting the text
on those semicolons therefore gives Cedar's policies in Cedar's order, with the
line each one starts on and its code without comments.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PolicySpan:
    """One policy's place in its file: the 1-based line it starts on and its code."""

    line: int
    code: str  # the policy's text with comments removed (strings kept)


def split_policies(text: str) -> list[PolicySpan]:
    """The policies of ``text`` in Cedar's order (``policy<N>`` is item N)."""
    spans: list[PolicySpan] = []
    code: list[str] = []
    line, start = 1, 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c == '"':
            end = _string_end(text, i)
            start = start or line
            code.append(text[i:end])
            line += text.count("\n", i, end)
            i = end
            continue
        if c == "\n":
            line += 1
        elif not c.isspace():
            start = start or line
        code.append(c)
        i += 1
        if c == ";":
            spans.append(PolicySpan(line=start or line, code="".join(code).strip()))
            code, start = [], 0
    return spans


def _string_end(text: str, i: int) -> int:
    """The index just past the Cedar string literal opening at ``text[i]``."""
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j + 1
        j += 1
    return len(text)
