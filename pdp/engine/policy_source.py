"""Where each policy of a ``*.cedar`` file starts, so that messages can name a line.

Cedar numbers the policies of one parse ``policy0``, ``policy1``, ... in the order
they are written (templates included), and every policy ends with ``;``, which
can appear nowhere else outside a string or a comment
(https://docs.cedarpolicy.com/policies/syntax-grammar.html). Splitting the text
on those semicolons therefore gives Cedar's policies in Cedar's order, with the
line each one starts on and its code without comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PolicySpan:
    """One policy's place in its file: the 1-based line it starts on and its code."""

    line: int
    code: str  # the policy's text with comments removed (strings kept)


def split_policies(text: str) -> list[PolicySpan]:
    """The policies of ``text`` in Cedar's order (``policy<N>`` is item N)."""
    return split_with_rest(text)[0]


def split_with_rest(text: str) -> tuple[list[PolicySpan], str]:
    """:func:`split_policies`, and the code after the last policy's ``;`` (comments
    removed): empty or blank in a file Cedar parses, since every policy ends with ``;``."""
    spans: list[PolicySpan] = []
    code: list[str] = []
    begin = -1  # offset of the policy's first character that is not space or comment
    pos = 0
    lines_at, line = 0, 1  # ``line`` is the line number of offset ``lines_at``
    for token in _CEDAR_TOKEN.finditer(text):  # one regex pass: the loop runs in C
        plain = text[pos:token.start()]
        if begin < 0 and plain.strip():
            begin = pos + len(plain) - len(plain.lstrip())
        code.append(plain)
        pos = token.end()
        word = token.group()
        if word.startswith("//"):
            continue  # comments are dropped; the newline after one is kept
        if begin < 0:
            begin = token.start()
        code.append(word)
        if word == ";":
            line += text.count("\n", lines_at, begin)
            lines_at = begin
            spans.append(PolicySpan(line=line, code="".join(code).strip()))
            code, begin = [], -1
    code.append(text[pos:])
    return spans, "".join(code)


# A string literal (to its closing quote, escapes skipped; an unterminated one runs to the
# end of the text), a ``//`` comment, or ``;``.
_CEDAR_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|//[^\n]*|;', re.DOTALL)
