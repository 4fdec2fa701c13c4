"""The event-loop thread's CPU per decision: the real app and log, in process, no sockets.

Over HTTP a decision's CPU is split between the worker's event-loop thread (the ASGI
layers, the body, the PEP check, verification, live context, ``decide()``, the record,
the hand-off to the log, the request-log line, the answer) and the decision log's
writer thread (chain, INSERT, commit). This measures the first alone: the real
``create_app`` around real dev components (JWT-SVID verified through its cache, the
SQLite log with ``durability = "power"``), ``--concurrency`` requests in flight on one
loop as a worker at 64 connections has them, the ASGI app called directly. The loop
thread's CPU (``time.thread_time``) over the decisions answered, and the whole process's
(``time.process_time``: the writer thread's share is the difference), median of
``--rounds`` rounds. ``--profile`` prints a cProfile of the loop thread grouped by part.

Compare two trees: ``PYTHONPATH=/other/tree python -m bench.loop_thread --json`` and
alternate.

    python -m bench loop_thread            # writes its section of bench/RESULTS.md
    python -m bench.loop_thread --json     # print only
    python -m bench.loop_thread --profile  # where the loop thread's time goes
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench.api_layer import _call
from bench.harness import print_or_record
from bench.http import SUBJECT

REPO = Path(__file__).resolve().parents[1]
PATH = "/v1/authorize"


def _app(state_dir: Path) -> tuple[Any, Any, bytes]:
    """The served app (request log on, written to a discarded stream), its components,
    and a ``/v1/authorize`` body for SUBJECT reading sales-daily."""
    import logging

    from pdp.api.app import collect_young_less_often, freeze_startup_objects
    from pdp.api.requestlog import LOGGER_NAME
    from pdp.components import build_components
    from pdp.config import load_settings
    from pdp.server import create_app

    settings = load_settings(None, dev=True, policies=REPO / "policies", state_dir=state_dir)
    components = build_components(settings)
    assert components.dev_issuer is not None
    token = components.dev_issuer.mint(SUBJECT, ttl_s=3600)
    app = create_app(components, watch=False)
    collect_young_less_often()  # as `pdp serve`'s workers (create_app(freeze_gc=True))
    freeze_startup_objects()
    for handler in logging.getLogger(LOGGER_NAME).handlers:  # the lines' cost, not the tty's
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(io.StringIO())
    body = json.dumps({"subject": {"token": token}, "action": "read",
                       "resource": {"type": "App::Dataset", "id": "sales-daily"}}).encode()
    return app, components, body


async def _drive(app: Any, body: bytes, requests: int, concurrency: int) -> None:
    async def client(n: int) -> None:
        for _ in range(n):
            status = await _call(app, "POST", PATH, body)
            assert status == 200, status

    share = requests // concurrency
    await asyncio.gather(*(client(share) for _ in range(concurrency)))


def measure(requests: int = 3000, rounds: int = 5, concurrency: int = 64,
            profile: bool = False) -> dict[str, float]:
    """Median µs of CPU per decision: the loop thread's and the whole process's."""
    loop_us: list[float] = []
    process_us: list[float] = []
    profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU, not wall
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        app, components, body = _app(Path(tmp))

        async def run() -> None:
            await _drive(app, body, 500, concurrency)  # warm: caches, the allocator
            for _ in range(rounds):
                n = requests // concurrency * concurrency
                t0, p0 = time.thread_time(), time.process_time()
                if profiler:
                    profiler.enable()
                await _drive(app, body, n, concurrency)
                if profiler:
                    profiler.disable()
                loop_us.append((time.thread_time() - t0) / n * 1e6)
                process_us.append((time.process_time() - p0) / n * 1e6)

        try:
            asyncio.run(run())
        finally:
            components.close()
    if profiler:
        _print_profile(profiler)
    return {"loop_thread_us": median(loop_us), "process_us": median(process_us)}


def _print_profile(profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(60)
    stats.sort_stats("tottime").print_stats(40)
    print(out.getvalue(), file=sys.stderr)


def report(result: dict[str, float]) -> str:
    return "\n".join([
        "| µs CPU per decision (median) | value |", "|---|---:|",
        f"| event-loop thread | {result['loop_thread_us']:,.1f} |",
        f"| whole process (loop + log writer) | {result['process_us']:,.1f} |", "",
        "In process: the served app (`create_app`, every middleware, request log on), dev "
        "components (JWT-SVID, SQLite log, `durability = \"power\"`), 64 requests in flight "
        "on one loop, the ASGI app called directly."])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench loop_thread")
    parser.add_argument("--requests", type=int, default=3000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="cProfile the loop thread")
    parser.add_argument("--json", action="store_true", help="print JSON, record nothing")
    args, _ = parser.parse_known_args(argv)
    result = measure(args.requests, args.rounds, args.concurrency, args.profile)
    return print_or_record(result, as_json=args.json or args.profile, report=report,
                           section="Event-loop thread per decision",
                           command="python -m bench loop_thread")


if __name__ == "__main__":
    sys.exit(main())
