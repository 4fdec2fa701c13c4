"""Peers over HTTP (issue 16): ``pdp serve``, the Cerbos PDP server (Go, the real binary
from npm) and the naive FastAPI + pyjwt + cedarpy app (:mod:`bench.peers.naive_app`)
answering the same question on the same machine in the same run, driven by wrk at 1 and
64 connections, alternating, so that the shared machine's load falls on all of them.

The question is the example bundle's dataset rule (``policies/datasets.cedar``) for
``spiffe://example.org/services/etl`` reading ``sales-daily``. Cerbos gets the same rules
as a resource policy (``bench/peers/cerbos/policies/dataset.yaml``), the workload's
groups as roles and the dataset's domain as an attribute *in the request*; the naive app
verifies the same JWT-SVID (with a cache) and runs the same Cedar policies and entities.
So they do not do the same work: ours also reads live context, explains, and hash-chains
a durable record before answering; Cerbos trusts the roles it is sent and writes its
audit file without fsync; the naive app keeps no record at all. That is the comparison
the issue asks for.

Ours is measured on both decision doors (``/v1/authorize`` and AuthZEN's evaluation),
with the default ``durability = "power"`` (fsync per group commit), and at 1 connection
also with ``durability = "process"`` (a second server, its own state directory).

    npm install --prefix bench/peers @cerbos/cerbos-linux-x64   # gitignored
    python -m bench cerbos_peer
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Protocol

import httpx

from bench.harness import record
from bench.http import (
    POLICIES,
    REPO,
    SUBJECT,
    Endpoint,
    Run,
    Server,
    _free_port,
    machine_times,
    tree_cpu_seconds,
    wrk,
)
from pdp.identity.dev_issuer import KEY_FILE, DevIssuer

PEER = Path(__file__).resolve().parent / "peers"
BINARY = PEER / "node_modules" / "@cerbos" / "cerbos-linux-x64" / "cerbos-linux-x64"
SECONDS, ROUNDS, WORKERS = 5.0, 2, 2
CONNECTIONS = (1, 64)
RESOURCE = {"type": "App::Dataset", "id": "sales-daily"}


class Target(Protocol):
    """A server under load: where it listens and how much CPU it has used so far."""

    @property
    def url(self) -> str: ...

    def cpu_seconds(self) -> float: ...


def _wait_until(process: subprocess.Popen[bytes], answers: Callable[[], bool], log: Path) -> None:
    """Return once ``answers()`` (an HTTP request to the peer) succeeds; raise with the
    peer's log if it exits or takes longer than a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            if answers():
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the peer did not start:\n{log.read_text()}")


class PeerProcess:
    """A peer server started by a subclass on ``self.port``, as a :class:`Target`."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Cerbos(PeerProcess):
    """``cerbos server`` on free loopback ports with bench/peers/cerbos."""

    def __init__(self, scratch: Path) -> None:
        self.port = _free_port()
        log = scratch / "cerbos.log"
        self.process = subprocess.Popen(
            [str(BINARY), "server", f"--config={PEER / 'cerbos' / 'config.yaml'}",
             f"--set=server.httpListenAddr=127.0.0.1:{self.port}",
             f"--set=server.grpcListenAddr=127.0.0.1:{_free_port()}",
             f"--set=storage.disk.directory={PEER / 'cerbos' / 'policies'}",
             f"--set=audit.file.path={scratch / 'cerbos-audit.log'}"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT)
        _wait_until(self.process, lambda: httpx.get(
            f"{self.url}/_cerbos/health", timeout=1).status_code == 200, log)


class NaiveApp(PeerProcess):
    """:mod:`bench.peers.naive_app` under ``uvicorn --workers 2`` (as many as ours),
    trusting the dev issuer key of ``state_dir``."""

    def __init__(self, scratch: Path, state_dir: Path) -> None:
        self.port = _free_port()
        log = scratch / "naive.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.peers.naive_app:app", "--port",
             str(self.port), "--workers", str(WORKERS), "--log-level", "warning",
             "--no-access-log"],
            cwd=scratch, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), "PEER_POLICIES": str(POLICIES),
                 "PEER_KEY": str(state_dir / KEY_FILE)})
        body = json.dumps({"subject": {"token": "x"}, "action": "read", "resource": RESOURCE})
        # any answer (401 for this token) means a worker serves
        _wait_until(self.process, lambda: httpx.post(
            f"{self.url}/v1/authorize", content=body, timeout=1).status_code > 0, log)
        time.sleep(1.0)  # the other worker finishes starting


CERBOS_BODY = json.dumps({
    "requestId": "bench", "principal": {"id": SUBJECT, "roles": ["pipelines"]},
    "resources": [{"actions": ["read"], "resource": {
        "kind": "dataset", "id": "sales-daily", "attr": {"domain": "analytics"}}}]},
    separators=(",", ":")).encode()


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def authorize_endpoint(token: str) -> Endpoint:
    """``POST /v1/authorize`` (ours and the naive app's) for the subject of ``token``."""
    return Endpoint("authorize", "/v1/authorize",
                    _compact({"subject": {"token": token}, "action": "read",
                              "resource": RESOURCE}), '"decision":"allow"')


def evaluation_endpoint(token: str) -> Endpoint:
    """AuthZEN's ``POST /access/v1/evaluation``: the same question."""
    return Endpoint("authzen", "/access/v1/evaluation",
                    _compact({"subject": {"type": "Pdp::Workload", "id": SUBJECT,
                                          "properties": {"token": token}},
                              "action": {"name": "read"}, "resource": RESOURCE}),
                    '"decision":true')


@dataclass(frozen=True)
class Measured:
    """One line of the load: a server, the door it is asked at, at which connections."""

    name: str
    target: Target
    endpoint: Endpoint
    connections: tuple[int, ...] = CONNECTIONS


def _drive(target: Target, ep: Endpoint, connections: int, scratch: Path) -> Run:
    cpu, (total, idle) = target.cpu_seconds(), machine_times()
    run = wrk(target.url, ep, seconds=SECONDS, connections=connections, scratch=scratch)
    run.cpu_us = (target.cpu_seconds() - cpu) / max(1, run.requests) * 1e6
    total_after, idle_after = machine_times()
    run.idle = (idle_after - idle) / max(1, total_after - total)
    assert run.not_ok == 0 and run.errors == 0, run
    return run


Runs = dict[str, dict[int, list[Run]]]


def _workdir(root: Path, name: str) -> tuple[Path, str]:
    """A server's own directory (policies copied in, its own dev issuer) and a token."""
    workdir = root / name
    shutil.copytree(POLICIES, workdir / "policies")
    return workdir, DevIssuer.load_or_create(workdir / ".pdp").mint(SUBJECT, ttl_s=3600)


def run() -> Runs:
    if not BINARY.exists():
        raise SystemExit(f"no Cerbos binary at {BINARY}: npm install --prefix bench/peers "
                         "@cerbos/cerbos-linux-x64")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    runs: Runs = {}
    with tempfile.TemporaryDirectory(prefix="pdp-bench-peers-") as tmp:
        root = Path(tmp)
        power_dir, power_token = _workdir(root, "power")
        process_dir, process_token = _workdir(root, "process")
        stop: list[Server | PeerProcess] = []
        try:
            ours = Server(power_dir, WORKERS)
            stop.append(ours)
            os.environ["PDP_AUDIT__DURABILITY"] = "process"  # read by the server it starts
            try:
                ours_process = Server(process_dir, WORKERS)
            finally:
                del os.environ["PDP_AUDIT__DURABILITY"]
            stop.append(ours_process)
            cerbos = Cerbos(root)
            stop.append(cerbos)
            naive = NaiveApp(root, power_dir / ".pdp")
            stop.append(naive)
            lines = [
                Measured("ours", ours, authorize_endpoint(power_token)),
                Measured("ours_authzen", ours, evaluation_endpoint(power_token)),
                Measured("ours_process", ours_process, authorize_endpoint(process_token), (1,)),
                Measured("naive", naive, authorize_endpoint(power_token)),
                Measured("cerbos", cerbos, Endpoint("cerbos", "/api/check/resources",
                                                    CERBOS_BODY, '"read":"EFFECT_ALLOW"')),
            ]
            for _ in range(ROUNDS):  # alternate: the machine's load falls on all alike
                for connections in CONNECTIONS:
                    for line in lines:
                        if connections in line.connections:
                            runs.setdefault(line.name, {}).setdefault(connections, []).append(
                                _drive(line.target, line.endpoint, connections, root))
        finally:
            for server in stop:
                server.stop()
    return runs


def _rps(runs: Runs, name: str, c: int) -> float:
    return median(r.rps for r in runs[name][c])


def _cpu(runs: Runs, name: str, c: int) -> float:
    return median(r.cpu_us for r in runs[name][c])


def _idle(runs: Runs, name: str, c: int) -> float:
    return median(r.idle for r in runs[name][c])


def _verdict(ratio: float, *, at_least: bool) -> str:
    met = ratio >= 1.0 if at_least else ratio <= 1.0
    return f"{ratio:.2f}× **{'met' if met else 'not met'}**"


SETUP = (
    f"Ours: `pdp serve --dev --workers {WORKERS}`, a JWT-SVID, SQLite log; `power` (fsync per "
    "group commit) and, in a second server with its own state directory, `process` (no fsync: "
    "survives kill -9, not power loss). Cerbos: the npm binary `@cerbos/cerbos-linux-x64`, "
    "`/api/check/resources`, file audit backend (decision logs on). Naive app: "
    "`bench/peers/naive_app.py` (FastAPI + pyjwt + cedarpy with the policy set and entities "
    f"parsed once, a token cache, no log) under `uvicorn --workers {WORKERS}`. wrk, "
    f"{SECONDS:g} s per figure, median of {ROUNDS} rounds alternating all five lines; CPU is "
    "user + system time of each server's processes (/proc) per answered request; machine idle "
    "is the share of both cores' time left idle during each figure (/proc/stat: what the server "
    "and wrk did not use, nor anything else running); every answer checked (an allow).")


def report_cerbos(runs: Runs) -> str:
    """Ours (both doors, both durability levels) against Cerbos, each target judged."""
    lines = ["| ours | connections | ours: decisions/s | Cerbos: decisions/s "
             "| rate ratio (target ≥ 1.0) | ours: CPU µs/decision | Cerbos: CPU µs/decision "
             "| CPU ratio (target ≤ 1.0 at 64) | machine idle: ours / Cerbos |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    doors = (("ours", "`/v1/authorize`, power"), ("ours_authzen", "AuthZEN, power"),
             ("ours_process", "`/v1/authorize`, process"))
    for name, label in doors:
        for c in CONNECTIONS:
            if c not in runs[name]:
                continue
            o_rps, t_rps = _rps(runs, name, c), _rps(runs, "cerbos", c)
            o_cpu, t_cpu = _cpu(runs, name, c), _cpu(runs, "cerbos", c)
            cpu = (_verdict(o_cpu / t_cpu, at_least=False) if c == 64
                   else f"{o_cpu / t_cpu:.2f}× —")
            lines.append(f"| {label} | {c} | {o_rps:,.0f} | {t_rps:,.0f} "
                         f"| {_verdict(o_rps / t_rps, at_least=True)} | {o_cpu:,.0f} "
                         f"| {t_cpu:,.0f} | {cpu} "
                         f"| {_idle(runs, name, c):.0%} / {_idle(runs, 'cerbos', c):.0%} |")
    power, process = _rps(runs, "ours", 1), _rps(runs, "ours_process", 1)
    return "\n".join(lines) + (
        f"\n\nAt 1 connection `durability = \"process\"` does {process / power:.2f}× the "
        f"decisions/s of `\"power\"` (the default) in this run.\n\n{SETUP}")


def report_naive(runs: Runs) -> str:
    """Ours against the naive app, and AuthZEN against ``/v1/authorize``."""
    lines = ["| connections | ours: CPU µs/decision | naive app: CPU µs/decision "
             "| CPU ratio (target ≤ 1.0) | ours: decisions/s | naive app: decisions/s "
             "| AuthZEN ÷ /v1/authorize: CPU | AuthZEN ÷ /v1/authorize: rate |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in CONNECTIONS:
        o_cpu, n_cpu = _cpu(runs, "ours", c), _cpu(runs, "naive", c)
        lines.append(f"| {c} | {o_cpu:,.0f} | {n_cpu:,.0f} "
                     f"| {_verdict(o_cpu / n_cpu, at_least=False)} | {_rps(runs, 'ours', c):,.0f} "
                     f"| {_rps(runs, 'naive', c):,.0f} "
                     f"| {_cpu(runs, 'ours_authzen', c) / o_cpu:.2f}× "
                     f"| {_rps(runs, 'ours_authzen', c) / _rps(runs, 'ours', c):.2f}× |")
    return "\n".join(lines) + (
        "\n\nOurs verifies the credential, reads live context, evaluates, explains and commits "
        "a hash-chained record before it answers; the naive app verifies (cached) and evaluates "
        f"only. Same run as \"Cerbos as a peer\".\n\n{SETUP}")


def main() -> int:
    runs = run()
    for title, body in (("Cerbos as a peer", report_cerbos(runs)),
                        ("The naive app as a peer", report_naive(runs))):
        print(f"{title}\n{body}\n")
        record(title, "python -m bench cerbos_peer", body)
    return 0


__all__ = ["main", "run"]
