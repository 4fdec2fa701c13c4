"""Cerbos as a peer (issue 16): the Cerbos PDP server (Go, the real binary from npm)
and ``pdp serve`` answering the same question on the same machine in the same run,
each with its decision log on, driven by wrk at 1 and 64 connections.

The question is the example bundle's dataset rule (``policies/datasets.cedar``) for
``spiffe://example.org/services/etl`` reading ``sales-daily``; Cerbos gets the same rules
as a resource policy (``bench/peers/cerbos/policies/dataset.yaml``), the workload's
groups as roles and the dataset's domain as an attribute *in the request*. So the two
do not do the same work: ours verifies a JWT-SVID, looks the entities up, reads live
context, explains and hash-chains a durable record; Cerbos trusts the roles it is sent
and writes its audit file without fsync. That is the comparison the issue asks for.

    npm install --prefix bench/peers @cerbos/cerbos-linux-x64   # gitignored
    python -m bench cerbos_peer
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from statistics import median

import httpx

from bench.harness import record
from bench.http import POLICIES, SUBJECT, Endpoint, Run, Server, _free_port, wrk

PEER = Path(__file__).resolve().parent / "peers"
BINARY = PEER / "node_modules" / "@cerbos" / "cerbos-linux-x64" / "cerbos-linux-x64"
SECONDS, ROUNDS, WORKERS = 5.0, 2, 2


class Cerbos:
    """``cerbos server`` on free loopback ports with bench/peers/cerbos."""

    def __init__(self, scratch: Path) -> None:
        self.port = _free_port()
        self.scratch = scratch
        self.process = subprocess.Popen(
            [str(BINARY), "server", f"--config={PEER / 'cerbos' / 'config.yaml'}",
             f"--set=server.httpListenAddr=127.0.0.1:{self.port}",
             f"--set=server.grpcListenAddr=127.0.0.1:{_free_port()}",
             f"--set=storage.disk.directory={PEER / 'cerbos' / 'policies'}",
             f"--set=audit.file.path={scratch / 'cerbos-audit.log'}"],
            stdout=(scratch / "cerbos.log").open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((scratch / "cerbos.log").read_text())
            try:
                if httpx.get(f"{self.url}/_cerbos/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("cerbos did not become healthy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os

        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


CERBOS_BODY = json.dumps({
    "requestId": "bench", "principal": {"id": SUBJECT, "roles": ["pipelines"]},
    "resources": [{"actions": ["read"], "resource": {
        "kind": "dataset", "id": "sales-daily", "attr": {"domain": "analytics"}}}]},
    separators=(",", ":")).encode()


def _drive(target: Server | Cerbos, ep: Endpoint, connections: int, scratch: Path) -> Run:
    cpu = target.cpu_seconds()
    run = wrk(target.url, ep, seconds=SECONDS, connections=connections, scratch=scratch)
    run.cpu_us = (target.cpu_seconds() - cpu) / max(1, run.requests) * 1e6
    assert run.not_ok == 0 and run.errors == 0, run
    return run


def run() -> dict[str, dict[int, list[Run]]]:
    if not BINARY.exists():
        raise SystemExit(f"no Cerbos binary at {BINARY}: npm install --prefix bench/peers "
                         "@cerbos/cerbos-linux-x64")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    runs: dict[str, dict[int, list[Run]]] = {"ours": {1: [], 64: []}, "cerbos": {1: [], 64: []}}
    with tempfile.TemporaryDirectory(prefix="pdp-bench-cerbos-") as tmp:
        workdir = Path(tmp)
        shutil.copytree(POLICIES, workdir / "policies")
        ours = Server(workdir, WORKERS)
        cerbos = Cerbos(workdir)
        try:
            from pdp.identity.dev_issuer import DevIssuer

            token = DevIssuer.load_or_create(workdir / ".pdp").mint(SUBJECT, ttl_s=3600)
            body = json.dumps({"subject": {"token": token}, "action": "read",
                               "resource": {"type": "App::Dataset", "id": "sales-daily"}},
                              separators=(",", ":")).encode()
            endpoints = {
                "ours": (ours, Endpoint("authorize", "/v1/authorize", body, '"decision":"allow"')),
                "cerbos": (cerbos, Endpoint("cerbos", "/api/check/resources", CERBOS_BODY,
                                            '"read":"EFFECT_ALLOW"')),
            }
            for _ in range(ROUNDS):  # alternate: the machine's load falls on both
                for connections in (1, 64):
                    for name, (target, ep) in endpoints.items():
                        runs[name][connections].append(_drive(target, ep, connections, workdir))
        finally:
            ours.stop()
            cerbos.stop()
    return runs


def report(runs: dict[str, dict[int, list[Run]]]) -> str:
    lines = ["| connections | ours: decisions/s | Cerbos: decisions/s | rate ratio (target ≥ 1.0) "
             "| ours: CPU µs/decision | Cerbos: CPU µs/decision | CPU ratio (target ≤ 1.0, at 64) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for c in (1, 64):
        o_rps, t_rps = median(r.rps for r in runs["ours"][c]), median(r.rps for r in runs["cerbos"][c])
        o_cpu = median(r.cpu_us for r in runs["ours"][c])
        t_cpu = median(r.cpu_us for r in runs["cerbos"][c])
        rate_met = "met" if o_rps >= t_rps else "not met"
        cpu_met = ("met" if o_cpu <= t_cpu else "not met") if c == 64 else "—"
        lines.append(f"| {c} | {o_rps:,.0f} | {t_rps:,.0f} | {o_rps / t_rps:.2f}× **{rate_met}** "
                     f"| {o_cpu:,.0f} | {t_cpu:,.0f} | {o_cpu / t_cpu:.2f}× **{cpu_met}** |")
    return "\n".join(lines) + (
        f"\n\nOurs: `pdp serve --dev --workers {WORKERS}`, `/v1/authorize` with a JWT-SVID, "
        "SQLite log (`durability = \"power\"`, the default). Cerbos: the npm binary "
        "`@cerbos/cerbos-linux-x64`, `/api/check/resources`, file audit backend (decision logs "
        f"on). wrk, {SECONDS:g} s per figure, median of {ROUNDS} alternating rounds; CPU is "
        "user + system time of the server's processes (/proc) per answered request.")


def main() -> int:
    body = report(run())
    print(body)
    record("Cerbos as a peer", "python -m bench cerbos_peer", body)
    return 0


__all__ = ["main", "run"]
