"""The two ``[audit] durability`` levels over HTTP (issue 16): ``/v1/authorize``
decisions per second at 1 and 64 connections with ``power`` (SQLite FULL, the
default) and with ``process`` (SQLite NORMAL), the same server command, the same
request, in the same run, alternating rounds so that the machine's load falls on both.

    python -m bench durability
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from statistics import median

from bench.harness import record
from bench.http import POLICIES, Endpoint, Run, Server, authorize_endpoint, loadgen, wrk

SECONDS, ROUNDS = 4.0, 3
LEVELS = ("power", "process")


def _drive(server: Server, ep: Endpoint, connections: int, scratch: Path) -> Run:
    if shutil.which("wrk"):
        return wrk(server.url, ep, seconds=SECONDS, connections=connections, scratch=scratch)
    return loadgen(server.url, ep, seconds=SECONDS, connections=connections, rate=0,
                   scratch=scratch)


def run() -> dict[str, dict[int, list[float]]]:
    rates: dict[str, dict[int, list[float]]] = {lv: {1: [], 64: []} for lv in LEVELS}
    for _ in range(ROUNDS):
        for level in LEVELS:
            with tempfile.TemporaryDirectory(prefix=f"pdp-bench-dur-{level}-") as tmp:
                workdir = Path(tmp)
                shutil.copytree(POLICIES, workdir / "policies")
                os.environ["PDP_AUDIT__DURABILITY"] = level  # read by the server it starts
                try:
                    server = Server(workdir, 1)
                finally:
                    del os.environ["PDP_AUDIT__DURABILITY"]
                try:
                    ep = authorize_endpoint(server, workdir)
                    for connections in (1, 64):
                        r = _drive(server, ep, connections, workdir)
                        assert r.not_ok == 0 and r.errors == 0, r
                        rates[level][connections].append(r.rps)
                finally:
                    server.stop()
    return rates


def report(rates: dict[str, dict[int, list[float]]]) -> str:
    tool = "wrk" if shutil.which("wrk") else "bench.loadgen"
    lines = ["| connections | durability = \"process\" (decisions/s) | durability = \"power\" "
             "(decisions/s, default) | process ÷ power |", "|---:|---:|---:|---:|"]
    for c in (1, 64):
        proc, power = median(rates["process"][c]), median(rates["power"][c])
        lines.append(f"| {c} | {proc:,.0f} | {power:,.0f} | {proc / power:.2f}× |")
    return "\n".join(lines) + (
        f"\n\n`/v1/authorize`, one worker, SQLite log on the machine's disk, {tool} "
        f"{SECONDS:g} s per figure, median of {ROUNDS} rounds alternating the two levels. "
        "At one connection every decision waits for its own commit, so the fsync of `power` "
        "is on every request's path; at 64 a group commit carries many records.")


def main() -> int:
    body = report(run())
    print(body)
    record("Decision log durability over HTTP", "python -m bench durability", body)
    return 0


__all__ = ["main", "run"]
