"""The API layer alone: CPU per request of the decision doors, in process, without sockets.

The app is the real one (``create_app``, every middleware) around components whose
``DecisionService.authorize`` answers a stored decision, as in ``bench.http``'s stub
server: what is left is the request's way through Starlette, FastAPI (or the fast
path, ``pdp.api.fastpath``), the body model, the PEP check and the JSON answer. The
ASGI app is called directly (no uvicorn, no sockets), so the figure is steady even
on a shared machine: process CPU time over ``--requests`` requests, median of
``--rounds`` rounds, each door in turn within a round.

Doors: ``POST /v1/authorize`` and AuthZEN's ``POST /access/v1/evaluation``, each
by the fast path and by its FastAPI route (the fast path stepped aside), and
``GET /healthz`` as the floor.

    python -m bench api_layer           # writes its section of bench/RESULTS.md
    python -m bench.api_layer --json    # print only (compare two trees: PYTHONPATH)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any

from bench.harness import print_or_record
from bench.http import SUBJECT, stored_decision_components

REPO = Path(__file__).resolve().parents[1]


def _app() -> tuple[Any, dict[str, bytes]]:
    """The app with a stored decision, and the body of each door."""
    from pdp.server import create_app

    components, token = stored_decision_components(
        REPO / "policies", state_dir=Path(tempfile.mkdtemp(prefix="bench-api-")))
    resource = {"type": "App::Dataset", "id": "sales-daily"}
    bodies = {
        "/v1/authorize": json.dumps({"subject": {"token": token}, "action": "read",
                                     "resource": resource}).encode(),
        "/access/v1/evaluation": json.dumps({
            "subject": {"type": "Pdp::Workload", "id": SUBJECT, "properties": {"token": token}},
            "action": {"name": "read"}, "resource": resource}).encode(),
    }
    return create_app(components, watch=False), bodies


async def _call(app: Any, method: str, path: str, body: bytes) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8181),
             "headers": [(b"host", b"pdp"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


@contextmanager
def _route_only(path: str) -> Iterator[bool]:
    """The fast path steps aside for ``path`` (False: this tree has no such switch)."""
    try:
        from pdp.api.fastpath import POST_PATHS
    except ImportError:
        yield False
        return
    answer = POST_PATHS.pop(path, None)
    try:
        yield answer is not None
    finally:
        if answer is not None:
            POST_PATHS[path] = answer


async def _cpu_us(app: Any, method: str, path: str, body: bytes, n: int) -> float:
    for _ in range(min(200, n)):  # warm: caches, the middleware stack, the allocator
        assert await _call(app, method, path, body) == 200
    start = time.process_time()
    for _ in range(n):
        await _call(app, method, path, body)
    return (time.process_time() - start) / n * 1e6


def measure(requests: int = 3000, rounds: int = 5) -> dict[str, float]:
    """Median µs of CPU per request for each door."""
    app, bodies = _app()
    samples: dict[str, list[float]] = {}

    async def run() -> None:
        for _ in range(rounds):
            for path, body in bodies.items():
                samples.setdefault(f"POST {path}", []).append(
                    await _cpu_us(app, "POST", path, body, requests))
                with _route_only(path) as stepped_aside:
                    if stepped_aside:
                        samples.setdefault(f"POST {path} (FastAPI route)", []).append(
                            await _cpu_us(app, "POST", path, body, requests))
            samples.setdefault("GET /healthz", []).append(
                await _cpu_us(app, "GET", "/healthz", b"", requests))

    asyncio.run(run())
    return {name: median(values) for name, values in samples.items()}


def report(result: dict[str, float]) -> str:
    floor = result["GET /healthz"]
    lines = ["| door | µs CPU per request (median) | × GET /healthz |", "|---|---:|---:|"]
    lines += [f"| {name} | {us:,.1f} | {us / floor:.2f} |" for name, us in result.items()]
    lines += ["", "In process (the ASGI app called directly, no sockets), "
              "`DecisionService.authorize` answering a stored decision: the API layer alone."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench api_layer")
    parser.add_argument("--requests", type=int, default=3000, help="per door per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON, record nothing")
    args, _ = parser.parse_known_args(argv)  # section names (`python -m bench api_layer`)
    return print_or_record(measure(args.requests, args.rounds), as_json=args.json,
                           report=report, section="API layer: the decision doors in process",
                           command="python -m bench api_layer")


if __name__ == "__main__":
    sys.exit(main())
