"""A bound on one libpq call that the network may swallow.

``statement_timeout`` is enforced by the server and TCP keepalives by the kernel; a peer
that keeps the socket open, acknowledges what it is sent and never answers (a stalled
proxy or load balancer, a half-dead middlebox) defeats both, and the call waits forever.
:func:`watchdog` shuts the connection's socket down past the bound, so the blocked call
fails at once (``psycopg.OperationalError``) and the caller reconnects.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg


def shut_down(conn: psycopg.Connection[Any] | None) -> None:
    """Shut ``conn``'s socket down, so that a libpq call blocked on it fails at once."""
    if conn is None or conn.closed:
        return
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:  # a duplicate: closing it is ours
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone: the blocked call has failed by itself


@contextmanager
def watchdog(conn: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
    """Run the body with ``conn``'s socket shut down if it takes longer than ``seconds``."""
    timer = threading.Timer(seconds, shut_down, (conn,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


__all__ = ["shut_down", "watchdog"]
