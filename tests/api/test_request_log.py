"""One structured line per request: parseable whatever the caller sends, bounded in size,
in text or JSON, and off when asked."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdp.api.requestlog import LOGGER_NAME, MAX_FIELD, format_event
from pdp.components import build_components
from pdp.config import load_settings
from tests.conftest import asgi_client

pytestmark = pytest.mark.anyio


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[list[str]]:
    handler = Lines()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def components_with(tmp_path: Path, bundle_copy, **log: object):
    settings = load_settings(None, dev=True, policies=bundle_copy(),
                             state_dir=tmp_path / "state", log=log)
    return build_components(settings)


PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^ ]*)')


def text_pairs(line: str) -> dict[str, str]:
    """A text line back into its pairs: a value is bare, or a JSON string when it holds a
    space, a quote, `=` or a backslash (the rule of ``format_event``)."""
    head, event, rest = line.split(" ", 2)
    assert head == "pdp:"
    pairs = {"event": event}
    for key, value in PAIR.findall(rest):
        pairs[key] = json.loads(value) if value.startswith('"') else value
    return pairs


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40))
def test_a_text_line_splits_back_into_the_same_pairs_whatever_the_path(path: str) -> None:
    line = format_event("request", {"method": "GET", "path": path, "status": 200}, "text")
    assert "\n" not in line
    pairs = text_pairs(line)
    assert pairs["status"] == "200" and pairs["method"] == "GET"
    assert pairs["path"] == path


@given(st.text(max_size=40))
def test_a_json_line_is_one_json_object_whatever_the_path(path: str) -> None:
    line = format_event("request", {"path": path, "status": 200}, "json")
    assert "\n" not in line
    assert json.loads(line) == {"event": "request", "path": path, "status": 200}


async def test_each_request_gets_one_line_and_forged_sizes_are_bounded(
        tmp_path: Path, bundle_copy, lines: list[str]) -> None:
    components = components_with(tmp_path, bundle_copy, format="json")
    try:
        async with asgi_client(components) as client:
            await client.get("/healthz", headers={"x-request-id": "r-1"})
            await client.get("/" + "a" * 5000 + "?secret=1")
            await client.post("/v1/authorize", content=b"{}", headers={"content-type": "text/plain"})
            # Refused by HeaderLimits (over 128 characters) yet still logged, bounded.
            await client.get("/healthz", headers={"x-request-id": "x" * 100_000})
    finally:
        components.close()
    requests = [json.loads(line) for line in lines if '"event": "request"' in line]
    assert [(r["path"][:8], r["status"]) for r in requests] == [
        ("/healthz", 200), ("/aaaaaaa", 404), ("/v1/auth", 415), ("/healthz", 400)]
    assert requests[0]["request_id"] == "r-1" and requests[0]["method"] == "GET"
    assert all(len(line) < 4 * MAX_FIELD for line in lines)
    assert "secret" not in "".join(lines)  # the query string is never written


async def test_requests_false_writes_no_request_lines_but_still_says_stopping(
        tmp_path: Path, bundle_copy, lines: list[str]) -> None:
    components = components_with(tmp_path, bundle_copy, requests=False)
    async with asgi_client(components) as client:
        await client.get("/healthz")
    assert not [line for line in lines if "request" in line]
    assert [line.split()[1] for line in lines] == ["stopping", "stopped"]
