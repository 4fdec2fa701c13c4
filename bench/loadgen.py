"""A small HTTP/1.1 load generator for the HTTP benchmark, run as a process of its own.

Two schedules, on keep-alive connections opened before the clock starts:

- **closed loop** (``--rate 0``, the most the server takes): each connection
  sends its next request as soon as the previous answer is read;
- **open loop** (``--rate R``): request *i* is due at ``t0 + i/R`` whatever
  happened before; it leaves on a free connection, and its latency counts from
  when it was *due*, so a server stall shows in the figures instead of slowing
  the sender down (no "coordinated omission", as wrk2 measures).

It speaks just enough HTTP/1.1 (``Content-Length`` bodies) to stay cheap: on a
2-core machine every microsecond the generator spends is taken from the server.
Loopback addresses only; the run is bounded by ``--duration`` and stops by itself.

    python -m bench.loadgen --url http://127.0.0.1:8181/v1/authorize --body-file req.json \\
        --expect '"decision":"allow"' --rate 1000 --duration 30

prints one JSON object: requests, not_ok, errors, seconds, rps, p50_ms, p90_ms, p99_ms, max_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_SECONDS = 600.0  # no run longer than this, whatever it is asked


def loopback_only(host: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"loadgen: {host} is not a loopback address; refusing to send load there")


@dataclass
class Target:
    host: str
    port: int
    request: bytes  # the complete request, sent as is every time
    expect: bytes | None  # a 200 whose body lacks this counts as not_ok

    @classmethod
    def build(cls, url: str, *, body: bytes | None, headers: list[str],
              expect: str | None) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise SystemExit("loadgen: give an http:// URL")
        loopback_only(parts.hostname)
        port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        lines = [f"{'POST' if body is not None else 'GET'} {path} HTTP/1.1",
                 f"Host: {parts.hostname}:{port}"]
        lines += headers
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return cls(parts.hostname, port, head + (body or b""),
                   expect.encode() if expect else None)


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # seconds
    not_ok: int = 0
    errors: int = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, target: Target, stats: Stats,
                 on_done: Callable[[Connection], None]) -> None:
        self.target, self.stats, self.on_done = target, stats, on_done
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.started = 0.0  # when the request in flight was due (open loop) or sent
        self.busy = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.busy:
            self.busy = False
            self.stats.errors += 1

    def send(self, started: float) -> None:
        assert self.transport is not None
        self.busy, self.started = True, started
        self.transport.write(self.target.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            length = None
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length is None:  # this generator reads Content-Length bodies only
                self.stats.errors += 1
                assert self.transport is not None
                self.transport.close()
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4:total])
            del self.buffer[:total]
            status = head[9:12]
            done = time.perf_counter()
            self.stats.latencies.append(done - self.started)
            expect = self.target.expect
            if status != "200" or (expect is not None and expect not in body):
                self.stats.not_ok += 1
            self.busy = False
            self.on_done(self)


async def run(target: Target, *, connections: int, duration: float, rate: float,
              warmup: float = 1.0) -> dict[str, float | int]:
    loop = asyncio.get_running_loop()
    duration = min(duration, MAX_SECONDS)
    stats = Stats()
    free: deque[Connection] = deque()
    waiting: deque[float] = deque()  # open loop: due times with no free connection yet
    closed_loop = rate <= 0
    stop_at = [float("inf")]

    def on_done(conn: Connection) -> None:
        if closed_loop:
            if time.perf_counter() < stop_at[0]:
                conn.send(time.perf_counter())
            return
        if waiting:
            conn.send(waiting.popleft())
        else:
            free.append(conn)

    conns: list[Connection] = []
    for _ in range(connections):
        _, conn = await loop.create_connection(lambda: Connection(target, stats, on_done),
                                               target.host, target.port)
        conns.append(conn)

    async def schedule(seconds: float) -> float:
        """Run the schedule for ``seconds``; return the measured span."""
        start = time.perf_counter()
        if closed_loop:
            stop_at[0] = start + seconds
            for conn in conns:
                conn.send(time.perf_counter())
            await asyncio.sleep(seconds)
            return time.perf_counter() - start
        total = int(rate * seconds)
        i = 0
        while i < total:
            now = time.perf_counter()
            while i < total and start + i / rate <= now:
                due = start + i / rate
                if free:
                    free.popleft().send(due)
                else:
                    waiting.append(due)
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        return time.perf_counter() - start

    free.extend(conns)
    if warmup > 0:  # let both sides settle; its figures are dropped
        await schedule(warmup)
        await _drain(conns, waiting, timeout=10.0)
        stats.latencies.clear()
        stats.not_ok = stats.errors = 0
        free.clear()
        free.extend(c for c in conns if not c.lost)
    stop_at[0] = float("inf")
    span = await schedule(duration)
    answered_in_span = len(stats.latencies)
    await _drain(conns, waiting, timeout=10.0)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    unanswered = sum(1 for c in conns if c.busy) + len(waiting)
    lat = sorted(stats.latencies)
    return {
        "requests": len(lat),
        "not_ok": stats.not_ok,
        "errors": stats.errors + unanswered,
        "seconds": round(span, 3),
        "rps": round((answered_in_span if closed_loop else len(lat)) / span, 1),
        "p50_ms": _pct(lat, 0.50),
        "p90_ms": _pct(lat, 0.90),
        "p99_ms": _pct(lat, 0.99),
        "max_ms": round(lat[-1] * 1000, 3) if lat else 0.0,
    }


async def _drain(conns: list[Connection], waiting: deque[float], *, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while (waiting or any(c.busy and not c.lost for c in conns)) and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", help="POST this file's bytes (JSON); else GET")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--expect", help="a 200 whose body lacks this string is not ok")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="requests per second (open loop); 0: as fast as answered")
    args = parser.parse_args(argv)
    body = open(args.body_file, "rb").read() if args.body_file else None
    target = Target.build(args.url, body=body, headers=args.header, expect=args.expect)
    try:
        import uvloop  # uvicorn[standard] brings it: the cheaper loop leaves more CPU to the server

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(run(target, connections=args.connections, duration=args.duration,
                        rate=args.rate, warmup=args.warmup))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
