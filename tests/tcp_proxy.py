"""A loopback TCP proxy a test can switch between passing, stalling, resetting and black-holing.

Put it in front of a real server (PostgreSQL, redis-server) to play the network failures that
a PDP meets in production, at run time and without root:

- ``pass``: bytes flow both ways.
- ``stall``: connections stay open and nothing moves: the proxy stops reading (bytes pile up
  in the kernel buffers), new connections are accepted and held. A server that "holds
  connections open but answers nothing". TCP keepalives are answered by the proxy's kernel,
  so only an application deadline notices it.
- ``blackhole``: connections stay open; everything sent is read and dropped, nothing comes
  back (new connections too): a peer that vanished behind a firewall dropping replies.
- ``reset``: every open connection is closed with a TCP RST (``SO_LINGER`` 0), and new
  connections are reset as soon as they are accepted: a restarted or crashed peer.

Threads, not asyncio, so the test's own event loop (if any) never has to run it::

    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        dsn = make_conninfo(BASE_DSN, host=proxy.host, port=proxy.port)
        ...
        proxy.mode = "stall"
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "stall", "blackhole", "reset"]
MODES: tuple[Mode, ...] = ("pass", "stall", "blackhole", "reset")
_TICK = 0.02  # how often a pump looks at the mode while nothing moves


class TcpProxy:
    """Listens on a free loopback port and forwards each connection to ``target``."""

    def __init__(self, target: tuple[str, int], *, mode: Mode = "pass") -> None:
        host, _ = target
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the test proxy forwards to loopback only")
        self.target = target
        self._mode: Mode = mode
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_TICK * 5)
        self.host, self.port = self._listener.getsockname()[:2]
        self.accepted = 0  # connections accepted, in any mode
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; one of {MODES}")
        self._mode = mode
        if mode == "reset":
            with self._lock:
                pairs, self._pairs = self._pairs, []
            for client, upstream in pairs:
                _reset(client)
                if upstream is not None:
                    _reset(upstream)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            client.close()
            if upstream is not None:
                upstream.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the threads --------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self._mode == "reset":
                _reset(client)
                continue
            threading.Thread(target=self._serve, args=(client,), name="tcp-proxy-conn",
                             daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        entry: tuple[socket.socket, socket.socket | None] = (client, None)
        with self._lock:
            self._pairs.append(entry)
        try:
            # A connection that arrives while stalled or black-holed reaches nothing yet.
            while self._mode in ("stall", "blackhole") and not self._stop.is_set():
                if self._mode == "blackhole":
                    _drain(client)
                self._stop.wait(_TICK)
            if self._mode != "pass" or self._stop.is_set():
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                if entry not in self._pairs:  # reset meanwhile
                    _reset(upstream)
                    return
                self._pairs.remove(entry)
                entry = (client, upstream)
                self._pairs.append(entry)
            self._pump(client, upstream)
        except (OSError, ValueError):  # reset (closed) under our feet
            pass
        finally:
            with self._lock:
                if entry in self._pairs:
                    self._pairs.remove(entry)
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        while not self._stop.is_set():
            mode = self._mode
            if mode == "reset":
                return
            if mode == "stall":
                self._stop.wait(_TICK)  # read nothing: the kernel buffers fill up
                continue
            readable, _, _ = select.select([client, upstream], [], [], _TICK)
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return  # one side closed: close both
                if self._mode == "pass":
                    peer[s].sendall(data)
                # blackhole: read and dropped


def _drain(s: socket.socket) -> None:
    readable, _, _ = select.select([s], [], [], 0)
    if readable:
        s.recv(65536)


def _reset(s: socket.socket) -> None:
    """Close with RST instead of FIN: the peer's next read fails with ECONNRESET."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    except OSError:
        pass


__all__ = ["MODES", "Mode", "TcpProxy"]
