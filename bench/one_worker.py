"""One worker, supervised or not: what the supervisor costs on the request path (issue 16).

``pdp serve`` with one worker is a supervisor and a worker; ``pdp serve --in-process``
is one process. The supervisor sits outside the request path (it holds the socket and
the bundle, and waits on pipes), so the rate and the CPU per decision should not move.
This measures it: ``/v1/authorize`` with a JWT-SVID of the dev issuer (an allow, SQLite
log on), wrk at 1 and 64 connections, the server's CPU (every process: supervisor and
worker) per answered decision, for this tree's default, this tree's ``--in-process`` and,
with ``--against DIR``, another checkout's default (its own ``.venv``), alternated round
by round in fresh processes.

    python -m bench.one_worker --against /work/wt-solo-base --rounds 3 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.http import REPO, Endpoint, _free_port, authorize_endpoint, tree_cpu_seconds, wrk

CONNECTIONS = (1, 64)


class Serve:
    """``pdp serve --dev [ARGS]`` of ``tree`` in ``workdir``, on a free loopback port
    (what :func:`bench.http.authorize_endpoint` needs of a server)."""

    def __init__(self, tree: Path, workdir: Path, args: list[str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(tree / ".venv" / "bin" / "python"), "-m", "pdp.cli.main", "serve", "--dev",
             "--port", str(self.port), *args],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("pdp serve exited")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    time.sleep(1.0)  # settle
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("pdp serve did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def measure(tree: Path, args: list[str], seconds: float, scratch: Path) -> dict[int, tuple[float, float]]:
    """Per connection count: (decisions/s, server CPU µs per decision)."""
    workdir = Path(tempfile.mkdtemp(dir=scratch))
    shutil.copytree(tree / "policies", workdir / "policies")
    server = Serve(tree, workdir, args)
    try:
        endpoint: Endpoint = authorize_endpoint(server, workdir)  # type: ignore[arg-type]
        out = {}
        for connections in CONNECTIONS:
            cpu = tree_cpu_seconds(server.process.pid)
            run = wrk(server.url, endpoint, seconds=seconds, connections=connections,
                      scratch=workdir)
            used = tree_cpu_seconds(server.process.pid) - cpu
            assert run.not_ok == 0 and run.errors == 0, run
            out[connections] = (run.rps, used / max(1, run.requests) * 1e6)
        return out
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.one_worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", help="another checkout whose default is the baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    a = parser.parse_args()
    configs = [("this tree, 1 supervised worker", REPO, []),
               ("this tree, --in-process", REPO, ["--in-process"])]
    if a.against:
        configs.insert(0, ("baseline, 1 worker", Path(a.against).resolve(), []))
    print("| round | server | rate, 1 conn | CPU/decision, 1 conn | rate, 64 conns "
          "| CPU/decision, 64 conns | load avg |\n|---:|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="pdp-one-worker-") as tmp:
        for n in range(a.rounds):
            for name, tree, args in configs:
                got = measure(tree, args, a.seconds, Path(tmp))
                print(f"| {n + 1} | {name} | {got[1][0]:,.0f}/s | {got[1][1]:,.0f} µs "
                      f"| {got[64][0]:,.0f}/s | {got[64][1]:,.0f} µs | {os.getloadavg()[0]:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
