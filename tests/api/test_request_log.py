"""One structured line per request: parseable whatever the caller sends, bounded in size,
in text or JSON, and off when asked."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdp.api.requestlog import (
    _BARE_LINES,
    LOGGER_NAME,
    MAX_FIELD,
    TurnBatchedHandler,
    format_event,
    log_event,
    request_logger,
    sole_plain_handler,
)
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
            # Refused by RequestLimits (over 128 characters) yet still logged, bounded.
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


class Writes:
    """A stream that remembers each ``write`` call (one per system call of a real one)."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def batched_logger(stream: Writes) -> logging.Logger:
    logger = logging.getLogger(f"{LOGGER_NAME}.test-batched")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = TurnBatchedHandler(stream)  # type: ignore[arg-type]  # a stream's two methods
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return logger


async def test_lines_of_one_loop_turn_leave_in_one_write_in_order_before_the_next_turn() -> None:
    stream = Writes()
    logger = batched_logger(stream)
    for i in range(5):
        logger.info("line %d", i)
    assert stream.writes == []  # kept until the turn ends
    await asyncio.sleep(0)  # the turn ends: flushed before anything of the next turn runs
    assert stream.writes == ["line 0\nline 1\nline 2\nline 3\nline 4\n"]
    logger.info("line 5")
    await asyncio.sleep(0)
    assert stream.writes[1:] == ["line 5\n"]


def test_a_line_without_a_running_loop_is_written_at_once_after_those_kept() -> None:
    stream = Writes()
    logger = batched_logger(stream)
    logger.info("at start-up")
    assert stream.writes == ["at start-up\n"]


async def test_log_event_writes_at_once_what_the_turn_kept() -> None:
    """``stopping`` flushes: a process about to exit loses none of its request lines."""
    stream = Writes()
    logger = request_logger("text")
    ours = [h for h in logger.handlers if isinstance(h, TurnBatchedHandler)]
    saved = [h.setStream(stream) for h in ours]  # type: ignore[arg-type]
    try:
        logger.info("pdp: request method=GET path=/healthz status=200")
        log_event("stopping", pid=1)
        assert "".join(stream.writes) == (
            "pdp: request method=GET path=/healthz status=200\npdp: stopping pid=1\n")
    finally:
        for handler, old in zip(ours, saved, strict=True):
            handler.setStream(old)  # type: ignore[arg-type]


class Closed(Writes):
    def write(self, text: str) -> int:
        raise ValueError("I/O operation on closed file")


async def test_a_closed_stream_drops_the_lines_and_raises_nowhere() -> None:
    """stderr gone (a test's capture closed, a broken pipe): neither the logging call, the
    end-of-turn flush nor ``flush`` before stopping raises, so the log still closes."""
    logger = batched_logger(Closed())
    logger.info("in a turn")
    await asyncio.sleep(0)  # the end-of-turn flush meets the closed stream
    for handler in logger.handlers:
        handler.flush()


def test_a_closed_stream_outside_a_loop_raises_nowhere() -> None:
    batched_logger(Closed()).info("at start-up")


def sole_logger(name: str) -> tuple[logging.Logger, TurnBatchedHandler]:
    """A logger set up as ``request_logger`` sets up ``pdp.requests``."""
    logger = logging.getLogger(f"{LOGGER_NAME}.{name}")
    logger.handlers.clear()
    logger.filters.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = TurnBatchedHandler(Writes())  # type: ignore[arg-type]
    handler.setFormatter(_BARE_LINES)
    logger.addHandler(handler)
    return logger, handler


class _Drop(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@pytest.mark.parametrize("change", [
    "another handler", "a logger filter", "a handler filter", "another formatter",
    "handler level", "logger level", "logging.disable", "propagation", "logger disabled"])
def test_the_direct_write_steps_aside_for_anything_that_could_see_or_change_a_line(
        change: str) -> None:
    logger, handler = sole_logger("sole")
    assert sole_plain_handler(logger) is handler
    try:
        if change == "another handler":
            logger.addHandler(Lines())
        elif change == "a logger filter":
            logger.addFilter(_Drop())
        elif change == "a handler filter":
            handler.addFilter(_Drop())
        elif change == "another formatter":
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        elif change == "handler level":
            handler.setLevel(logging.WARNING)
        elif change == "logger level":
            logger.setLevel(logging.WARNING)
        elif change == "logging.disable":
            logging.disable(logging.INFO)
        elif change == "propagation":
            logger.propagate = True
        else:
            logger.disabled = True
        assert sole_plain_handler(logger) is None
    finally:
        logging.disable(logging.NOTSET)
        logger.handlers.clear()


async def test_a_request_line_skips_the_log_record_and_reads_as_through_logging(
        tmp_path: Path, bundle_copy, monkeypatch: pytest.MonkeyPatch) -> None:
    """With only the request log's own handler listening, a request's line is written
    without a ``LogRecord``, and it is the line ``logging`` writes when another handler
    listens too (``ms`` aside, a duration)."""
    made: list[str] = []
    make_record = logging.Logger.makeRecord

    def counted(self: logging.Logger, *args: object, **kwargs: object) -> logging.LogRecord:
        made.append(self.name)
        return make_record(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(logging.Logger, "makeRecord", counted)
    stream = Writes()
    components = components_with(tmp_path, bundle_copy)
    logger = request_logger("text")
    ours = [h for h in logger.handlers if isinstance(h, TurnBatchedHandler)]
    saved = [h.setStream(stream) for h in ours]  # type: ignore[arg-type]
    # Only ours, as in `pdp serve` (pytest's log capture may have put its own beside it).
    monkeypatch.setattr(logger, "handlers", list(ours))
    seen = Lines()
    try:
        async with asgi_client(components) as client:
            headers = {"x-request-id": "same", "content-type": "text/plain"}
            await client.post("/v1/authorize", content=b"x", headers=headers)
            assert LOGGER_NAME not in made  # the direct write
            logger.addHandler(seen)
            await client.post("/v1/authorize", content=b"x", headers=headers)
            assert made.count(LOGGER_NAME) == 1  # through logging, as before
            logger.removeHandler(seen)
    finally:
        logger.removeHandler(seen)
        for handler, old in zip(ours, saved, strict=True):
            handler.setStream(old)  # type: ignore[arg-type]
        components.close()
    written = [line for line in "".join(stream.writes).splitlines() if " request " in line]
    assert len(written) == 2 and seen.lines == [written[1]]
    direct, logged = (text_pairs(line) for line in written)
    assert direct.pop("ms") and logged.pop("ms")
    assert direct == logged == {"event": "request", "method": "POST", "path": "/v1/authorize",
                                "status": "415", "request_id": "same", "client": "127.0.0.1"}
