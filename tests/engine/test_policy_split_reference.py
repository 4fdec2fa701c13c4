"""The two policy splitters (lines for messages, source text for the archive) scan with
one regex since issue 16; they must cut exactly where the character-by-character scans
they replaced cut. Those scans are kept here as the reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.audit.auditing.archive import split_policies as archive_split
from pdp.engine.policy_source import split_policies as engine_split
from tests.conftest import examples

# The characters that matter to a split (quotes, escapes, comments, ends, lines), plus
# some that do not, so that every tricky combination comes up in a few hundred examples.
CEDAR_ISH = st.text(alphabet='ab ;"\\/\n\té', max_size=80)


def reference_engine_split(text: str) -> list[tuple[int, str]]:
    spans: list[tuple[int, str]] = []
    code: list[str] = []
    line, start, i, n = 1, 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c == '"':
            end = i + 1
            while end < n:
                if text[end] == "\\":
                    end += 2
                    continue
                if text[end] == '"':
                    end += 1
                    break
                end += 1
            end = min(end, n)
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
            spans.append((start or line, "".join(code).strip()))
            code, start = [], 0
    return spans


def reference_archive_split(text: str) -> list[str]:
    chunks: list[str] = []
    start = i = 0
    in_string = False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif c == ";":
            chunks.append(text[start:i + 1])
            start = i + 1
        i += 1
    return chunks


@settings(max_examples=examples(400), deadline=None)
@given(CEDAR_ISH)
def test_engine_split_cuts_where_the_character_scan_did(text: str) -> None:
    assert [(s.line, s.code) for s in engine_split(text)] == reference_engine_split(text)


@settings(max_examples=examples(400), deadline=None)
@given(CEDAR_ISH)
def test_archive_split_cuts_where_the_character_scan_did(text: str) -> None:
    assert archive_split(text) == reference_archive_split(text)


def test_a_semicolon_in_a_string_or_comment_does_not_end_a_policy() -> None:
    text = 'permit (principal, action, resource) when { "a;b" == "a;b" }; // x;y\nforbid (principal, action, resource);\n'
    spans = engine_split(text)
    assert [s.line for s in spans] == [1, 2]
    assert spans[0].code.endswith('"a;b" };')
    assert len(archive_split(text)) == 2
