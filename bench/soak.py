"""The soak: two ``pdp serve`` replicas sharing PostgreSQL and Redis under mixed traffic for
``SOAK_SECONDS`` (default 600), one of them killed with SIGKILL in the middle and restarted.

``make soak`` (or ``python -m bench.soak``; not part of ``make test``). What it runs:

- a fresh PostgreSQL schema for the decision log (``SOAK_POSTGRES_DSN``, default
  ``postgresql://postgres@127.0.0.1:5432/test``), dropped at the end unless ``SOAK_KEEP=1``;
- a private ``redis-server`` on a free loopback port (never the shared one);
- replicas A and B, ``pdp serve --dev`` in their own directories, sharing the dev issuer key;
- ``SOAK_CLIENTS`` (default 4) client threads sending allows, denies and hostile credentials
  (garbage, a forged signature, expired) to either replica, and one administrator thread:
  incident on/off, a revocation added and lifted, bundle reloads with a changed file;
- at half time, ``kill -9`` of B, restarted two seconds later on the same port.

At the end: every acknowledged decision (the client saw a ``decision_id`` for a decision
that was recorded, i.e. anything but ``audit.unavailable``) must be in the log, the chain
must verify, and each replica's RSS growth after warm-up must stay under
``SOAK_MAX_RSS_GROWTH_MB`` (default 64). The figures go to bench/RESULTS.md (``--no-record``
leaves it alone); the exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import make_conninfo

from bench.harness import machine, record
from bench.http import kill_tree, process_tree
from pdp.audit.postgres import PostgresDecisionLog
from pdp.identity.dev_issuer import KEY_FILE, DevIssuer

REPO = Path(__file__).resolve().parent.parent
ETL = "spiffe://example.org/services/etl"
VICTIM = "spiffe://example.org/services/soak-victim"
SRE = "spiffe://example.org/ops/sre-console"
SECTION = "Soak: two replicas, PostgreSQL + Redis, kill -9 in the middle"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_ready(url: str, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail at once if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready")


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private ``redis-server`` on a free loopback port, append-only file on as the
    docs advise, its files in ``directory`` (created), answering PING; never the shared
    server other test runs use."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    directory.mkdir()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--dir", str(directory)],
        stdout=(directory / "redis.log").open("wb"), stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("redis-server did not answer")


@dataclass
class Replica:
    """One ``pdp serve --dev`` process in ``workdir``, restartable on the same port."""

    name: str
    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.starts += 1
        log = (self.workdir / f"serve-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pdp.cli.main", "serve", "--dev", "--port", str(self.port)],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env})
        wait_ready(f"{self.url}/readyz", self.process, f"replica {self.name} (see {log.name})",
                   timeout)

    def kill9(self) -> None:
        """A crash of the replica: its supervisor and worker at once."""
        if self.process is not None and self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def rss_mb(self) -> float | None:
        if self.process is None or self.process.poll() is not None:
            return None
        sizes = [_rss_mb(pid) for pid in process_tree(self.process.pid)]  # supervisor + worker
        return sum(size for size in sizes if size is not None)


class Tally:
    """What the clients saw, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acknowledged: set[str] = set()
        self.outcomes: Counter[str] = Counter()  # "allow", "deny:<codes>", "http <n>", "error"
        self.admin: Counter[str] = Counter()
        self.readiness: Counter[str] = Counter()  # "A: 200 ready", ...
        self.requests = 0

    def decision(self, body: dict[str, Any]) -> None:
        codes = ",".join(body.get("reason_codes") or [])
        key = body["decision"] if body["decision"] == "allow" else f"deny:{codes}"
        with self.lock:
            self.requests += 1
            self.outcomes[key] += 1
            if body.get("decision_id") and "audit.unavailable" not in codes:
                self.acknowledged.add(body["decision_id"])

    def other(self, key: str) -> None:
        with self.lock:
            self.requests += 1
            self.outcomes[key] += 1


class Soak:
    def __init__(self, seconds: float, clients: int, workdir: Path) -> None:
        self.seconds = seconds
        self.clients = clients
        self.workdir = workdir
        self.stop = threading.Event()
        self.tally = Tally()
        self.rss: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        self.events: list[str] = []
        self.started = 0.0

    # -- services -----------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis, self.redis_port = start_redis(self.workdir / "redis")

    def create_schema(self) -> str:
        base = os.environ.get("SOAK_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
        self.schema = f"pdp_soak_{secrets.token_hex(4)}"
        self.base_dsn = base
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        return make_conninfo(base, options=f"-csearch_path={self.schema}")

    def start_replicas(self, dsn: str) -> None:
        env = {"PDP_AUDIT__BACKEND": "postgres", "PDP_AUDIT__POSTGRES_DSN": dsn,
               "PDP_CONTEXT__BACKEND": "redis",
               "PDP_CONTEXT__REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}
        self.replicas: list[Replica] = []
        for name in ("A", "B"):
            workdir = self.workdir / name
            shutil.copytree(REPO / "policies", workdir / "policies")
            self.replicas.append(Replica(name, workdir, env))
        self.issuer = DevIssuer.load_or_create(self.replicas[0].workdir / ".pdp")
        for replica in self.replicas[1:]:
            (replica.workdir / ".pdp" / KEY_FILE).parent.mkdir(parents=True)
            shutil.copy(self.replicas[0].workdir / ".pdp" / KEY_FILE,
                        replica.workdir / ".pdp" / KEY_FILE)
        self.forger = DevIssuer.load_or_create(self.workdir / "forger")  # the wrong key
        for replica in self.replicas:
            replica.start()

    # -- traffic --------------------------------------------------------------------------

    def _token(self, who: str) -> str:
        return self.issuer.mint(who, ttl_s=120)

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        http = httpx.Client(timeout=10)
        tokens: dict[str, tuple[float, str]] = {}

        def fresh(who: str) -> str:
            at, token = tokens.get(who, (0.0, ""))
            if time.monotonic() - at > 60:
                token = self._token(who)
                tokens[who] = (time.monotonic(), token)
            return token

        while not self.stop.is_set():
            replica = rng.choice(self.replicas)
            roll = rng.random()
            if roll < 0.45:
                subject, action, resource = fresh(ETL), "read", "sales-daily"
            elif roll < 0.5:  # allowed, unless the incident (tag pii) is on
                subject, action, resource = fresh(ETL), "read", "customer-pii"
            elif roll < 0.7:
                subject, action, resource = fresh(ETL), "write", "ledger"
            elif roll < 0.8:
                subject, action, resource = fresh(VICTIM), "read", "sales-daily"
            elif roll < 0.87:
                subject, action, resource = secrets.token_urlsafe(40), "read", "sales-daily"
            elif roll < 0.94:
                subject, action, resource = self.forger.mint(ETL, ttl_s=120), "read", "ledger"
            else:
                past = datetime.now(UTC) - timedelta(hours=1)
                subject = self.issuer.mint(ETL, ttl_s=60, now=past)
                action, resource = "read", "sales-daily"
            try:
                r = http.post(f"{replica.url}/v1/authorize", json={
                    "subject": {"token": subject}, "action": action,
                    "resource": {"type": "App::Dataset", "id": resource}})
            except httpx.HTTPError as e:
                self.tally.other(f"unanswered ({type(e).__name__})")
                time.sleep(0.05)  # a replica down: do not spin
                continue
            if r.status_code == 200:
                self.tally.decision(r.json())
            else:
                self.tally.other(f"http {r.status_code}")
        http.close()

    def administrator(self) -> None:
        rng = random.Random(7)
        http = httpx.Client(timeout=10)
        incident = False
        revocation: str | None = None
        reloads = 0
        while not self.stop.wait(1.5):
            replica = rng.choice(self.replicas)
            headers = {"authorization": f"Bearer {self._token(SRE)}"}
            step = rng.choice(("incident", "revocation", "reload"))
            try:
                if step == "incident":
                    if incident:
                        r = http.delete(f"{replica.url}/v1/context/incidents/SOAK-1",
                                        headers=headers)
                    else:
                        r = http.post(f"{replica.url}/v1/context/incidents", headers=headers,
                                      json={"id": "SOAK-1", "scope": "resource_tag:pii",
                                            "level": "critical", "reason": "soak"})
                    incident = incident if r.status_code >= 300 else not incident
                elif step == "revocation":
                    if revocation is None:
                        r = http.post(f"{replica.url}/v1/revocations", headers=headers,
                                      json={"kind": "spiffe_id", "value": VICTIM,
                                            "reason": "soak"})
                        if r.status_code in (200, 201):
                            revocation = r.json()["revocation"]["id"]
                    else:
                        r = http.delete(f"{replica.url}/v1/revocations/{revocation}",
                                        headers=headers)
                        if r.status_code in (200, 404):
                            revocation = None
                else:
                    reloads += 1  # a changed file: a new bundle version each time
                    with (replica.workdir / "policies" / "soak.cedar").open("w") as f:
                        f.write(f"// soak reload {reloads}\n")
                    r = http.post(f"{replica.url}/v1/policies/reload", headers=headers)
                self.tally.admin[f"{step} {r.status_code}"] += 1
            except httpx.HTTPError as e:
                self.tally.admin[f"{step} unanswered ({type(e).__name__})"] += 1
        http.close()

    def sampler(self) -> None:
        """RSS of each replica, and what its /readyz says, every 2 s."""
        http = httpx.Client(timeout=5)
        while not self.stop.wait(2.0):
            for replica in self.replicas:
                rss = replica.rss_mb()
                if rss is not None:
                    self.rss[replica.name].append((time.monotonic() - self.started, rss))
                try:
                    r = http.get(f"{replica.url}/readyz")
                    status = f"{r.status_code} {r.json().get('status')}"
                except (httpx.HTTPError, ValueError) as e:
                    status = f"unanswered ({type(e).__name__})"
                with self.tally.lock:
                    self.tally.readiness[f"{replica.name}: {status}"] += 1
        http.close()

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.start_redis()
        dsn = self.create_schema()
        try:
            self.start_replicas(dsn)
            self.started = time.monotonic()
            threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                       for i in range(self.clients)]
            threads += [threading.Thread(target=self.administrator, daemon=True),
                        threading.Thread(target=self.sampler, daemon=True)]
            for t in threads:
                t.start()
            time.sleep(self.seconds / 2)
            b = self.replicas[1]
            restart_from = time.monotonic() - self.started
            b.kill9()
            self.events.append(f"{restart_from:.0f} s: kill -9 of replica B (pid "
                               f"{b.process.pid if b.process else '?'})")
            time.sleep(2)
            b.start()
            self.b_restarted = time.monotonic() - self.started
            self.events.append(f"{self.b_restarted:.0f} s: replica B ready again")
            time.sleep(max(0.0, self.seconds - (time.monotonic() - self.started)))
            self.stop.set()
            for t in threads:
                t.join(timeout=30)
            elapsed = time.monotonic() - self.started
            for replica in self.replicas:
                replica.stop()
            return self.check(dsn, elapsed)
        finally:
            for replica in getattr(self, "replicas", []):
                replica.kill9()
            self.redis.kill()
            self.redis.wait(timeout=10)
            if os.environ.get("SOAK_KEEP") != "1":
                with psycopg.connect(self.base_dsn, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def check(self, dsn: str, elapsed: float) -> dict[str, Any]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            stored = {row[0] for row in conn.execute("SELECT decision_id FROM decisions")}
        with PostgresDecisionLog(dsn) as log:
            report = log.verify()
        missing = self.tally.acknowledged - stored
        warmup = min(60.0, self.seconds / 5)
        rss = {"A": _growth(self.rss["A"], warmup),
               "B": _growth(self.rss["B"], self.b_restarted + warmup)}
        return {"elapsed_s": elapsed, "requests": self.tally.requests,
                "outcomes": dict(self.tally.outcomes), "admin": dict(self.tally.admin),
                "readiness": dict(self.tally.readiness),
                "acknowledged": len(self.tally.acknowledged), "stored": len(stored),
                "missing": sorted(missing), "chain_ok": report.ok,
                "chain": (f"{report.checked:,} records checked" if report.ok else
                          f"broken at seq {report.first_broken_seq}: {report.detail}"),
                "rss": rss, "events": self.events}


def _growth(samples: list[tuple[float, float]], after: float) -> dict[str, float] | None:
    """RSS at the first sample after ``after`` s, at the last, and the growth between."""
    kept = [mb for t, mb in samples if t >= after]
    if len(kept) < 2:
        return None
    return {"start_mb": kept[0], "end_mb": kept[-1], "peak_mb": max(kept),
            "growth_mb": kept[-1] - kept[0]}


def report(result: dict[str, Any], *, seconds: float, clients: int, limit_mb: float) -> str:
    rows = ["| figure | value |", "|---|---:|",
            f"| duration | {result['elapsed_s']:.0f} s ({clients} client threads + 1 admin) |",
            f"| requests to /v1/authorize | {result['requests']:,} "
            f"({result['requests'] / result['elapsed_s']:.0f}/s over both replicas) |",
            f"| acknowledged decisions (a decision_id, recorded) | {result['acknowledged']:,} |",
            f"| records in the log (decisions + admin events) | {result['stored']:,} |",
            f"| acknowledged decisions missing from the log | {len(result['missing'])} |",
            f"| chain | {'verifies' if result['chain_ok'] else 'BROKEN'}: {result['chain']} |"]
    for name, figures in result["rss"].items():
        label = "replica A" if name == "A" else "replica B (after its restart)"
        if figures is None:
            rows.append(f"| RSS {label} | not enough samples |")
        else:
            rows.append(f"| RSS {label}, after warm-up → end (peak) | {figures['start_mb']:.0f} → "
                        f"{figures['end_mb']:.0f} MB ({figures['peak_mb']:.0f}); growth "
                        f"{figures['growth_mb']:+.1f} MB (limit {limit_mb:.0f}) |")
    outcomes = "\n".join(f"| {k} | {v:,} |" for k, v in sorted(
        result["outcomes"].items(), key=lambda kv: -kv[1]))
    admin = "\n".join(f"| {k} | {v:,} |" for k, v in sorted(result["admin"].items()))
    readiness = "\n".join(f"| {k} | {v:,} |" for k, v in sorted(result["readiness"].items()))
    events = "; ".join(result["events"])
    return (f"{seconds:.0f} s of mixed traffic on two `pdp serve --dev` replicas sharing a fresh "
            f"PostgreSQL schema (decision log) and a private redis-server (live context); "
            f"{events}.\n\n" + "\n".join(rows) +
            "\n\nAnswers seen by the clients (deny reasons as reason codes; *unanswered*: the "
            "connection failed, while B was down):\n\n| outcome | count |\n|---|---:|\n"
            + outcomes + "\n\nAdministrator steps (HTTP status):\n\n| step | count |\n|---|---:|\n"
            + admin + "\n\n`/readyz` every 2 s (HTTP status, `status`):\n\n| replica: answer | "
            "count |\n|---|---:|\n" + readiness)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--clients", type=int, default=int(os.environ.get("SOAK_CLIENTS", "4")))
    parser.add_argument("--no-record", action="store_true", help="leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    limit_mb = float(os.environ.get("SOAK_MAX_RSS_GROWTH_MB", "64"))
    with tempfile.TemporaryDirectory(prefix="pdp-soak-") as tmp:
        soak = Soak(args.seconds, args.clients, Path(tmp))
        result = soak.run()
    text = report(result, seconds=args.seconds, clients=args.clients, limit_mb=limit_mb)
    print(f"machine: {machine()}\n\n{text}")
    if not args.no_record:
        record(SECTION, f"SOAK_SECONDS={args.seconds:.0f} make soak", text)
    failures = []
    if result["missing"]:
        failures.append(f"{len(result['missing'])} acknowledged decisions missing, e.g. "
                        f"{result['missing'][:3]}")
    if not result["chain_ok"]:
        failures.append(f"chain: {result['chain']}")
    for name, figures in result["rss"].items():
        if figures is not None and figures["growth_mb"] > limit_mb:
            failures.append(f"replica {name} RSS grew {figures['growth_mb']:.1f} MB")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
