"""Stopping a worker without resetting a request its client has just sent.

A worker of ``pdp serve --workers N`` that is replaced (a reload) or stopped stops
accepting connections, and uvicorn then closes every keep-alive connection with no
request under way. A client that sent its next request on such a connection at that
moment gets "server disconnected without sending a response": the classic keep-alive
close race, which a PEP hammering the PDP hits on every rollout (seen in the suite
under load: tests/api/test_serve_supervised_reload.py).

So a draining worker first tells its clients, the only way HTTP/1.1 can: every
response from then on, on every connection it holds, says ``Connection: close`` and
the connection is closed after it, and the client opens its next one on a worker that
still listens. Only connections that stay idle for :data:`IDLE_GRACE_S` are closed
without a word: their clients are not sending, and a request sent at that very moment
meets the same race as a keep-alive timeout (Envoy's and nginx's drains work the same
way).
Ref: https://www.rfc-editor.org/rfc/rfc9112#section-9.6
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from pdp.api.one_write import OneWriteMixin

IDLE_GRACE_S = 0.5
"""How long a draining worker keeps a connection its client does not use. Far longer
than the gap between two requests of a busy client, and short enough that a replaced
worker goes in well under a second."""
POLL_S = 0.01


class DrainingMixin:
    """For uvicorn's httptools protocol: :meth:`start_draining` ends the connection after
    the response under way, or after the next request's, with ``Connection: close``."""

    _draining = False
    cycle: Any  # uvicorn's RequestResponseCycle, or None between requests

    def start_draining(self) -> None:
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def on_headers_complete(self) -> None:
        # A mixin: uvicorn's protocol class follows it in the MRO (draining_protocol_class).
        super().on_headers_complete()  # type: ignore[misc]
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # read before the app's task sends a byte


def draining_protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol that can drain (httptools, which uvicorn[standard]
    brings; its h11 protocol has no hook, and drains as uvicorn does), and sends each
    answer in one write (:mod:`pdp.api.one_write`)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    return type("DrainingHttpProtocol", (DrainingMixin, OneWriteMixin, HttpToolsProtocol), {})


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose shutdown drains as the module docstring says.

    ``on_draining`` is called once it accepts no more connections (the supervisor may
    then answer what waited for that)."""

    def __init__(self, config: uvicorn.Config, on_draining: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_draining = on_draining

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listening in self.servers:  # no new connection from here on (idempotent)
            listening.close()
        self._on_draining()
        await drain(self.server_state.connections, IDLE_GRACE_S)
        await super().shutdown(sockets=sockets)  # closes what is left idle, waits for the rest


async def drain(connections: set[Any], idle_grace_s: float) -> None:
    """Ask each of ``connections`` (uvicorn's live set: a closed one leaves it) to close
    after its next response; return once all have, or after ``idle_grace_s``."""
    for connection in list(connections):
        if isinstance(connection, DrainingMixin):
            connection.start_draining()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + idle_grace_s
    while connections and loop.time() < deadline:
        await asyncio.sleep(POLL_S)


__all__ = ["IDLE_GRACE_S", "DrainingMixin", "DrainingServer", "drain",
           "draining_protocol_class"]
