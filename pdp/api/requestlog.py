"""One structured line per HTTP request, and the server's own start and stop events.

The decision log records *decisions*; operators also need to see *requests*:
which path answered what, how fast, for whom, and whether a 4xx came from a
client's bytes (413, 415, 422) or from a refusal. :class:`RequestLog` writes one
line per request after its answer was sent, to the ``pdp.requests`` logger on
standard error, in one of two formats (``[log] format``):

- ``text`` (the default), ``key=value`` pairs a person can read and ``grep``::

      pdp: request method=GET path=/v1/gateway/envoy/datasets/ledger status=403 ms=1.9
        request_id=7f3c decision_id=019ab0c2-... client=127.0.0.1

- ``json``, one object per line for a log shipper (Loki, Elasticsearch, Cloud
  Logging)::

      {"event": "request", "method": "POST", "path": "/v1/authorize", "status": 200, ...}

The query string is left out: it can carry what a caller did not mean to
publish, and the decision log already has every decision's inputs. The
request id (``X-Request-ID``, recorded with each decision) and, where the answer
carries it in ``x-pdp-decision-id`` (the gateway doors), the decision id are the
join keys into the decision log. A line is written for every answer the
app gives, the middleware's own 4xx included, since this wraps them all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from typing import Literal, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER_NAME = "pdp.requests"

LogFormat = Literal["text", "json"]

MAX_FIELD = 256
"""Longest path or request id written (cut with ``...``): a caller's bytes must not decide
how much the log grows; the decision log keeps what a decision needs in full."""


_NEEDS_QUOTES = re.compile(r'[ "=\\]')
"""A space, a quote, ``=`` or a backslash: a text value holding one is JSON-quoted."""


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD] + "..."


@dataclass(frozen=True)
class RequestLine:
    """What one request's line says."""

    method: str
    path: str
    status: int
    ms: float
    client: str | None = None
    request_id: str | None = None
    decision_id: str | None = None

    def fields(self) -> dict[str, object]:
        values: dict[str, object] = {"method": self.method, "path": self.path,
                                     "status": self.status, "ms": round(self.ms, 2)}
        for name in ("request_id", "decision_id", "client"):
            value = getattr(self, name)
            if value is not None:
                values[name] = value
        return values


def format_event(event: str, fields: dict[str, object], fmt: LogFormat) -> str:
    """``event`` and its ``fields`` as one line: JSON, or ``pdp: event k=v ...``.

    Text values with a space, a quote or ``=`` are JSON-quoted, so that a line
    always splits back into the same pairs (a path may hold anything).
    """
    if fmt == "json":
        return json.dumps({"event": event, **fields}, separators=(", ", ": "),
                          ensure_ascii=False)
    parts = [f"pdp: {event}"]
    for key, value in fields.items():
        text = str(value)
        if not text or _NEEDS_QUOTES.search(text) or not text.isprintable():
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class TurnBatchedHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` that writes the lines of one event-loop turn in one write.

    At 64 connections a worker answers several requests per turn of its loop; a
    ``StreamHandler`` writes and flushes each line (a system call per request, under
    the handler's lock). Here a line logged on a running loop is kept, and the first
    one of a turn schedules :meth:`flush` for the end of that turn (``call_soon``), so
    the lines still leave within the turn that answered them, in order. A line
    logged without a running loop (start-up, a thread) flushes what is kept and is
    written at once. What is lost to ``kill -9`` is at most that turn's lines, as
    before at most the line of the request being answered; the decision log, not
    this one, is what must survive it.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._kept: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own rule: report, never raise
            self.handleError(record)
            return
        self._keep(line)

    def write_line(self, line: str) -> None:
        """Write ``line`` as :meth:`emit` writes a record whose formatted text it is,
        under the handler's lock as ``Handler.handle`` takes it, without a
        ``LogRecord`` (see :func:`sole_plain_handler`)."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._keep(line)

    def _keep(self, line: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._kept.append(line)
            self.flush()
            return
        if not self._kept:  # the turn's first line: write them all when the turn ends
            loop.call_soon(self.flush)
        self._kept.append(line)

    def flush(self) -> None:
        """Write the kept lines now. Never raises, as ``StreamHandler`` never does: a
        closed or broken stream (stderr gone) drops them, and the caller (the loop's
        callback, ``log_event`` before the log closes) goes on."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                self._write_kept()
            except (OSError, ValueError):  # ValueError: "I/O operation on closed file"
                self._kept.clear()

    def _write_kept(self) -> None:
        if self._kept:
            text = "\n".join(self._kept) + "\n"
            self._kept.clear()
            self.stream.write(text)
        self.stream.flush()


_BARE_LINES = logging.Formatter("%(message)s")
"""The request log's formatter: a line is formatted before it is logged, and written as is."""


def sole_plain_handler(logger: logging.Logger) -> TurnBatchedHandler | None:
    """The handler an INFO line of ``logger`` would reach, when it is the only one and
    would write the line unchanged: then :meth:`TurnBatchedHandler.write_line` writes
    exactly what ``logger.info(line)`` would, without building a ``logging.LogRecord``
    (its attributes, ``time``, the thread and process names: about a quarter of the
    line's cost). None when anything else may see or change the line (another handler,
    a test's, a filter, another formatter, a level or ``logging.disable``
    above INFO, propagation to the root logger): then the line goes through
    ``logging`` as before. Asked per line: handlers may be added at any time.
    """
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters or logger.disabled:
        return None
    handler = handlers[0]
    if (type(handler) is not TurnBatchedHandler or handler.formatter is not _BARE_LINES
            or handler.filters or handler.level > logging.INFO
            or not logger.isEnabledFor(logging.INFO)):
        return None
    return handler


def request_logger(fmt: LogFormat) -> logging.Logger:
    """The ``pdp.requests`` logger, writing bare lines (already formatted) to stderr
    (:class:`TurnBatchedHandler`).

    Set up here, once per process, rather than by ``logging.basicConfig``: uvicorn
    configures the root logger its own way, and the lines must not depend on it.
    ``fmt`` is only remembered for :func:`log_event`.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_pdp_request_log", False) for h in logger.handlers):
        handler = TurnBatchedHandler(sys.stderr)
        handler.setFormatter(_BARE_LINES)
        handler._pdp_request_log = True  # type: ignore[attr-defined]  # our own marker
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    logger.pdp_format = fmt  # type: ignore[attr-defined]  # read by log_event
    return logger


def log_event(event: str, **fields: object) -> None:
    """A server event (``stopping``) in the request log's format, when it is set up."""
    logger = logging.getLogger(LOGGER_NAME)
    fmt: LogFormat = getattr(logger, "pdp_format", "text")
    logger.info(format_event(event, fields, fmt))
    for handler in logger.handlers:  # said now: the process may be about to stop
        if isinstance(handler, TurnBatchedHandler):
            handler.flush()


@dataclass
class _Seen:
    status: int = 500  # nothing sent: the server failed before answering
    decision_id: str | None = None


class RequestLog:
    """ASGI middleware: one line per HTTP request, after its answer (see the module)."""

    def __init__(self, app: ASGIApp, fmt: LogFormat = "text") -> None:
        self.app = app
        self.fmt = fmt
        self.logger = request_logger(fmt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = _Seen()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-pdp-decision-id":
                        seen.decision_id = _bounded(value.decode("latin-1"))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            line = format_event("request", self._line(scope, seen, started).fields(), self.fmt)
            handler = sole_plain_handler(self.logger)
            if handler is not None:
                handler.write_line(line)
            else:
                self.logger.info(line)

    @staticmethod
    def _line(scope: Scope, seen: _Seen, started: float) -> RequestLine:
        request_id = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                request_id = _bounded(value.decode("latin-1"))
        client = scope.get("client")
        return RequestLine(
            method=_bounded(str(scope.get("method", ""))),
            path=_bounded(str(scope.get("path", ""))),
            status=seen.status, ms=(time.perf_counter() - started) * 1000,
            client=str(client[0]) if client else None, request_id=request_id,
            decision_id=seen.decision_id)


__all__ = ["LOGGER_NAME", "LogFormat", "RequestLine", "RequestLog", "TurnBatchedHandler",
           "format_event", "log_event", "request_logger", "sole_plain_handler"]
