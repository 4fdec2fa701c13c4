"""Scale-out, measured: nginx in front of two ``pdp serve`` replicas that share one
PostgreSQL decision log and one Redis, and what each part costs per decision.

``python -m bench scaleout`` (``--quick`` for a smoke run). Everything runs on loopback,
started by this module and stopped at the end:

- a fresh PostgreSQL **database** of its own (``PDP_BENCH_POSTGRES_DSN``, default
  ``postgresql://postgres@127.0.0.1:5432/test``, names the server; the database is
  dropped afterwards), so that its backends can be told from other users' by
  ``application_name``;
- a private ``redis-server`` on a free port (its CPU is then ours alone);
- replicas A and B: ``pdp serve --dev`` with one worker each (the default), the
  PostgreSQL log and the Redis live context, sharing the dev issuer's key;
- two nginx instances built from ``deploy/compose/nginx.conf`` (the deployed config,
  only names and ports made local): one whose upstream is A alone, one with A and B.

What it measures, in one run:

1. **Scaling**: ``wrk`` at 64 connections through each nginx, in alternating rounds, a
   JWT-SVID ``/v1/authorize`` that is allowed; decisions/s for 1 and 2 replicas and the
   ratio. Around every round, the CPU time (``/proc/<pid>/stat``; Redis's own ``INFO
   cpu``) of each component: the PDP processes, the PostgreSQL backends serving the
   replicas, Redis, nginx; divided by the answers, µs of each per decision. The records
   the round added to the log, and in how many transactions (rows sharing an ``xmin``
   were committed together): the group commit's size.
2. **The log's ceiling**: two writer processes (two replicas' worth of writers contending
   for the chain's lock) append realistic records (``bench.audit_log.make_record``)
   through ``PostgresDecisionLog`` from many tasks each, into a schema of their own:
   records/s, records per commit, and the PostgreSQL backends' CPU per record. The
   two replicas' decisions/s is then read as a share of it.
3. **Redis pub/sub delay**: an incident declared on replica A (``POST
   /v1/context/incidents``) until replica B's ``/v1/authorize`` enforces it (a write to
   a sensitive dataset turns from allow to deny by ``guard.incident.sensitive-writes``),
   and the same for lifting it; p50/p99 over the trials, timed from A's answer. Redis's
   CPU per change, and while idle (each replica's resync check).

No figure is asserted: the section prints ratios and records them in bench/RESULTS.md
with the command, the date and the machine's load. docs/scaling.md builds its capacity
model on them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import psycopg
import redis
from psycopg.conninfo import make_conninfo

from bench.audit_log import append_throughput, make_record
from bench.harness import machine, record
from bench.http import SUBJECT, Endpoint, Run, wrk
from bench.soak import Replica, _free_port, start_redis, wait_ready
from pdp.audit.postgres import PostgresDecisionLog
from pdp.identity.dev_issuer import KEY_FILE, DevIssuer

REPO = Path(__file__).resolve().parent.parent
NGINX_CONF = REPO / "deploy" / "compose" / "nginx.conf"
PG_DSN = os.environ.get("PDP_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SECTION = "Scale-out: two replicas behind nginx, one PostgreSQL log, one Redis"
SRE = "spiffe://example.org/ops/sre-console"
REPLICA_APP = "pdp-scaleout-replica"  # application_name of the replicas' PostgreSQL sessions
WRITER_APP = "pdp-scaleout-writer"  # ... and of the ceiling's writer processes
INCIDENT_POLICY = "guard.incident.sensitive-writes"


@dataclass(frozen=True)
class Plan:
    """How long and how often: the full run, or ``--quick`` for a smoke run."""

    seconds: float = 10.0  # per wrk run
    rounds: int = 5  # alternating rounds of 1 and 2 replicas
    connections: int = 64
    trials: int = 50  # pub/sub: declare + lift on A, seen on B
    idle_s: float = 5.0  # Redis idle: the replicas' resync checks alone
    ceiling_records: int = 20_000  # per writer process
    ceiling_tasks: int = 512  # concurrent append() tasks per writer process


QUICK = Plan(seconds=2.0, rounds=1, trials=5, idle_s=2.0, ceiling_records=2_000,
             ceiling_tasks=128)


# -- CPU accounting ---------------------------------------------------------------------

def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process so far (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_children(pid: int) -> list[int]:
    """``pid`` and the processes it started (one level: an nginx master's workers)."""
    try:
        return [pid, *(int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text()
                       .split())]
    except OSError:
        return [pid]


def pids_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds per pid (as text keys, so Redis's single figure fits the same shape)."""
    readings = {str(pid): _cpu_s(pid) for pid in pids}
    return {pid: s for pid, s in readings.items() if s is not None}


def spent(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU seconds between two readings; a process born in between counts from zero (one
    that ended in between is lost: the readings bracket short runs, so it is rare)."""
    return sum(s - before.get(pid, 0.0) for pid, s in after.items())


Reading = dict[str, dict[str, float]]


class Meter:
    """Reads each component's CPU time; ``delta`` of two readings is seconds spent."""

    def __init__(self, components: dict[str, Callable[[], dict[str, float]]]) -> None:
        self.components = components

    def read(self) -> Reading:
        return {name: read() for name, read in self.components.items()}

    @staticmethod
    def delta(before: Reading, after: Reading) -> dict[str, float]:
        return {name: spent(before[name], after[name]) for name in after}


def redis_cpu(client: redis.Redis) -> dict[str, float]:
    """Redis's own CPU seconds (``INFO cpu``: microsecond resolution, unlike /proc's ticks)."""
    info = client.info("cpu")
    return {"redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}


def redis_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per Redis command so far (``INFO commandstats``), our own ``INFO`` left out."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()
            if name != "cmdstat_info"}


@dataclass(frozen=True)
class RedisWindow:
    """What Redis did over a window: CPU seconds, calls per command, and how long."""

    cpu_s: float
    calls: dict[str, int]
    seconds: float

    @property
    def commands(self) -> int:
        return sum(self.calls.values())


@contextmanager
def redis_window(client: redis.Redis) -> Iterator[list[RedisWindow]]:
    """``with redis_window(r) as w:`` ... ``w[0]`` is what Redis did inside the block."""
    cpu, calls, start = redis_cpu(client), redis_calls(client), time.perf_counter()
    taken: list[RedisWindow] = []
    yield taken
    after = redis_calls(client)
    taken.append(RedisWindow(spent(cpu, redis_cpu(client)),
                             {k: n - calls.get(k, 0) for k, n in after.items()
                              if n > calls.get(k, 0)}, time.perf_counter() - start))


def backend_pids(conn: psycopg.Connection[Any], application: str) -> list[int]:
    """The PostgreSQL backends serving ``application`` in this database."""
    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = %s", (application,)).fetchall()
    return [int(r[0]) for r in rows]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- the services -------------------------------------------------------------------------

@contextmanager
def own_database() -> Iterator[str]:
    """A fresh database on the benchmark's PostgreSQL server; its DSN; dropped after."""
    name = f"pdp_scaleout_{secrets.token_hex(4)}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(PG_DSN, dbname=name)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def nginx_config(upstreams: list[int], listen: int) -> str:
    """deploy/compose/nginx.conf with its two replicas replaced by loopback ``upstreams``
    (one or two ports) and its listener by ``listen``; the rest as deployed."""
    text = NGINX_CONF.read_text()
    lines = []
    servers = iter(upstreams)
    for line in text.splitlines():
        if line.strip().startswith("server pdp-"):
            port = next(servers, None)
            if port is None:
                continue  # the upstream has fewer replicas than compose's
            line = line.replace(line.split()[1], f"127.0.0.1:{port}")
        lines.append(line)
    if next(servers, None) is not None:
        raise ValueError("more upstreams than compose's nginx.conf has server lines")
    text = "\n".join(lines) + "\n"
    if text.count("listen 8181;") != 1:
        raise ValueError("compose's nginx.conf no longer listens on 8181 once")
    return text.replace("listen 8181;", f"listen 127.0.0.1:{listen};")


class Nginx:
    """An nginx master (``daemon off``) with its own prefix directory and config."""

    def __init__(self, directory: Path, upstreams: list[int]) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise SystemExit("nginx is not installed (apt-get install nginx)")
        self.port = _free_port()
        directory.mkdir(parents=True)
        conf = directory / "nginx.conf"
        conf.write_text(nginx_config(upstreams, self.port))
        self.process = subprocess.Popen(
            [binary, "-p", str(directory), "-c", str(conf), "-g",
             f"daemon off; pid {directory}/nginx.pid;"],
            stdout=(directory / "access.log").open("wb"), stderr=subprocess.STDOUT)
        # /readyz through it: nginx listens and reaches its upstream replica(s).
        wait_ready(f"{self.url}/readyz", self.process, f"nginx (see {directory}/access.log)",
                   30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: the master we started
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class Cluster:
    """Everything the run started, and how to reach it."""

    workdir: Path
    dsn: str
    replicas: list[Replica] = field(default_factory=list)
    nginx: dict[int, Nginx] = field(default_factory=dict)  # replicas behind it -> nginx

    def start(self, stack: ExitStack, idle_s: float) -> None:
        redis_process, redis_port = start_redis(self.workdir / "redis")
        stack.callback(_terminate, redis_process)
        self.redis = redis.Redis(port=redis_port)
        stack.callback(self.redis.close)
        with redis_window(self.redis) as bare:  # Redis alone: its own housekeeping
            time.sleep(idle_s)
        self.bare_redis = bare[0]
        env = {"PDP_AUDIT__BACKEND": "postgres",
               "PDP_AUDIT__POSTGRES_DSN": make_conninfo(self.dsn, application_name=REPLICA_APP),
               "PDP_CONTEXT__BACKEND": "redis",
               "PDP_CONTEXT__REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
        for name in ("A", "B"):
            workdir = self.workdir / name
            shutil.copytree(REPO / "policies", workdir / "policies")
            self.replicas.append(Replica(name, workdir, env))
        self.issuer = DevIssuer.load_or_create(self.replicas[0].workdir / ".pdp")
        key = self.replicas[1].workdir / ".pdp" / KEY_FILE
        key.parent.mkdir(parents=True)
        shutil.copy(self.replicas[0].workdir / ".pdp" / KEY_FILE, key)
        for replica in self.replicas:
            stack.callback(replica.stop)
        with ThreadPoolExecutor(len(self.replicas)) as starting:  # side by side: half the wait
            # A loaded machine starts slowly; .result() raises what a start raised.
            for started in [starting.submit(r.start, 180) for r in self.replicas]:
                started.result()
        for count in (1, 2):
            nginx = Nginx(self.workdir / f"nginx-{count}",
                          [r.port for r in self.replicas[:count]])
            stack.callback(nginx.stop)
            self.nginx[count] = nginx
        self.monitor = psycopg.connect(self.dsn, autocommit=True)
        stack.callback(self.monitor.close)

    def meter(self) -> Meter:
        a, b = self.replicas

        def pdp(replica: Replica) -> Callable[[], dict[str, float]]:
            def read() -> dict[str, float]:  # the supervisor and its one worker
                assert replica.process is not None
                return pids_cpu(with_children(replica.process.pid))
            return read

        def nginx() -> dict[str, float]:
            return pids_cpu([p for n in self.nginx.values()
                             for p in with_children(n.process.pid)])

        return Meter({"PDP A": pdp(a), "PDP B": pdp(b),
                      "PostgreSQL": lambda: pids_cpu(backend_pids(self.monitor, REPLICA_APP)),
                      "Redis": lambda: redis_cpu(self.redis), "nginx": nginx})

    def log_head(self) -> int:
        row = self.monitor.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()
        return int(row[0]) if row else 0


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


def commits_after(conn: psycopg.Connection[Any], seq: int, table: str = "decisions"
                  ) -> tuple[int, int]:
    """Records after ``seq`` and the transactions that wrote them: rows committed by one
    transaction carry its id in ``xmin``, so the group commit's size is rows ÷ distinct."""
    row = conn.execute(f"SELECT count(*), count(DISTINCT xmin::text) FROM {table} "
                       "WHERE seq > %s", (seq,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def seq_scans(conn: psycopg.Connection[Any]) -> int:
    """Sequential scans of the replicas' ``decisions`` table so far (its statistics)."""
    row = conn.execute("SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables "
                       "WHERE schemaname = 'public' AND relname = 'decisions'").fetchone()
    return int(row[0]) if row else 0


# -- 1. scaling ---------------------------------------------------------------------------

@dataclass
class Round:
    replicas: int
    run: Run
    cpu_s: dict[str, float]
    records: int
    commits: int


def scaling(cluster: Cluster, plan: Plan) -> list[Round]:
    token = cluster.issuer.mint(SUBJECT, ttl_s=3600)
    body = json.dumps({"subject": {"token": token}, "action": "read",
                       "resource": {"type": "App::Dataset", "id": "sales-daily"}},
                      separators=(",", ":")).encode()
    endpoint = Endpoint("authorize", "/v1/authorize", body, '"decision":"allow"')
    for nginx in cluster.nginx.values():  # every replica answers this, or nothing to time
        for _ in range(4):
            answer = httpx.post(f"{nginx.url}/v1/authorize", content=body, timeout=30,
                                headers={"content-type": "application/json"}).json()
            assert answer["decision"] == "allow", answer
    meter = cluster.meter()
    rounds = []
    for i in range(plan.rounds):
        for count in ((1, 2) if i % 2 == 0 else (2, 1)):  # noise falls on both alike
            head = cluster.log_head()
            before = meter.read()
            run = wrk(cluster.nginx[count].url, endpoint, seconds=plan.seconds,
                      connections=plan.connections, scratch=cluster.workdir)
            time.sleep(0.5)  # the answers wrk stopped waiting for are recorded all the same
            cpu = Meter.delta(before, meter.read())
            records, commits = commits_after(cluster.monitor, head)
            rounds.append(Round(count, run, cpu, records, commits))
            print(f"  {count} replica(s): {run.rps:,.0f} decisions/s, {records:,} records in "
                  f"{commits:,} commits", flush=True)
    return rounds


# -- 2. the log's ceiling -----------------------------------------------------------------

def ceiling(cluster: Cluster, plan: Plan) -> dict[str, float]:
    """Two writer processes appending as fast as the log takes them, in a schema of their
    own (a chain of its own) in the same database."""
    schema = f"ceiling_{secrets.token_hex(3)}"
    cluster.monitor.execute(f'CREATE SCHEMA "{schema}"')
    dsn = make_conninfo(cluster.dsn, options=f"-csearch_path={schema}",
                        application_name=WRITER_APP)
    command = [sys.executable, "-m", "bench.scaleout", "--log-writer", dsn,
                str(plan.ceiling_records), str(plan.ceiling_tasks)]
    writers = [subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for w in writers:  # records built and the log opened: only appending is timed
            assert w.stdout is not None
            if w.stdout.readline().strip() != "ready":
                raise RuntimeError("a log writer did not start")
        backends = pids_cpu(backend_pids(cluster.monitor, WRITER_APP))
        wal = cluster.monitor.execute("SELECT pg_current_wal_lsn()").fetchone()
        for w in writers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        results = []
        for w in writers:
            assert w.stdout is not None
            results.append(json.loads(w.stdout.readline()))
        # Read while the writers hold their sessions: a backend's CPU goes with it.
        pg_s = spent(backends, pids_cpu([int(p) for p in backends]))
        sizes = cluster.monitor.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s), "
            "pg_total_relation_size(%s::regclass)",
            (wal[0] if wal else None, f'"{schema}".decisions')).fetchone()
        for w in writers:
            w.communicate("close\n", timeout=60)
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    total = sum(r["records"] for r in results)
    records, commits = commits_after(cluster.monitor, 0, f'"{schema}".decisions')
    assert records == total, (records, total)  # every acknowledged append is in the table
    wal_bytes, stored_bytes = (float(sizes[0]), float(sizes[1])) if sizes else (0.0, 0.0)
    return {"records": total, "per_s": total / wall, "per_commit": records / max(1, commits),
            "wal_bytes": wal_bytes / total, "stored_bytes": stored_bytes / total,
            "pg_us": pg_s / total * 1e6,
            "writer_us": sum(r["cpu_s"] for r in results) / total * 1e6,
            "tasks": plan.ceiling_tasks}


def log_writer(dsn: str, records: int, tasks: int) -> int:
    """The ceiling's writer process: append ``records`` from ``tasks`` tasks when told
    (``go`` on stdin), print the figures, close the log when told (``close``)."""
    batch = [make_record(i) for i in range(records)]
    log = PostgresDecisionLog(dsn)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        start = time.time()
        rate = append_throughput(log, batch, tasks)
        end = time.time()
        print(json.dumps({"start": start, "end": end, "records": records,
                          "cpu_s": rate.cpu_us * records / 1e6}), flush=True)
        sys.stdin.readline()
    finally:
        log.close()
    return 0


# -- 3. pub/sub ---------------------------------------------------------------------------

def pubsub_delay(cluster: Cluster, plan: Plan) -> dict[str, Any]:
    """Incident declared on A until B enforces it, lifted on A until B allows again; the
    delays (seconds) and what Redis spent per change beyond its idle rate."""
    a, b = cluster.replicas
    admin = {"authorization": f"Bearer {cluster.issuer.mint(SRE, ttl_s=3600)}"}
    probe = {"subject": {"token": cluster.issuer.mint(SUBJECT, ttl_s=3600)}, "action": "write",
             "resource": {"type": "App::Dataset", "id": "customer-pii"}}
    delays: dict[str, list[float]] = {"declared": [], "from_request": [], "lifted": []}
    polls: list[float] = []
    unseen = 0
    with httpx.Client(timeout=10) as http:
        def enforced() -> bool:
            start = time.perf_counter()
            answer = http.post(f"{b.url}/v1/authorize", json=probe).json()
            polls.append(time.perf_counter() - start)
            if answer["decision"] == "allow":
                return False
            if INCIDENT_POLICY not in json.dumps(answer):
                raise RuntimeError(f"B denied for another reason: {answer}")
            return True

        def until(state: bool, since: float) -> float | None:
            """When B's answer first shows ``state`` (None: not within 10 s)."""
            while time.perf_counter() < since + 10:
                if enforced() == state:
                    return time.perf_counter()
            return None

        if enforced():
            raise RuntimeError("B enforces an incident before the trials")
        with redis_window(cluster.redis) as idle:
            time.sleep(plan.idle_s)
        with redis_window(cluster.redis) as busy:
            for trial in range(plan.trials):
                sent = time.perf_counter()
                http.post(f"{a.url}/v1/context/incidents", headers=admin, json={
                    "id": f"SCALEOUT-{trial}", "scope": "resource_tag:pii",
                    "level": "critical", "reason": "scale-out pub/sub trial"}
                ).raise_for_status()
                acknowledged = time.perf_counter()
                seen = until(True, acknowledged)
                if seen is None:
                    unseen += 1
                else:
                    delays["declared"].append(seen - acknowledged)
                    delays["from_request"].append(seen - sent)
                http.delete(f"{a.url}/v1/context/incidents/SCALEOUT-{trial}",
                            headers=admin).raise_for_status()
                acknowledged = time.perf_counter()
                seen = until(False, acknowledged)
                if seen is None:
                    unseen += 1
                    break  # B still enforces it: the next trial would measure nothing
                delays["lifted"].append(seen - acknowledged)
    quiet, loud = idle[0], busy[0]
    changes = len(delays["declared"]) + len(delays["lifted"]) + unseen
    idle_share = loud.seconds / quiet.seconds  # the idle work the trials' window holds too
    per_change = {name: (n - quiet.calls.get(name, 0) * idle_share) / changes
                  for name, n in loud.calls.items()}
    return {**delays, "poll_ms": median(polls) * 1e3, "unseen": unseen, "changes": changes,
            "redis_us_per_change": max(0.0, loud.cpu_s - quiet.cpu_s * idle_share)
            / changes * 1e6,
            "calls_per_change": {k: v for k, v in per_change.items() if v >= 0.05},
            "idle_cpu_us_per_s": quiet.cpu_s / quiet.seconds * 1e6,
            "bare_cpu_us_per_s": cluster.bare_redis.cpu_s / cluster.bare_redis.seconds * 1e6,
            "idle_calls_per_replica_s": {k: n / quiet.seconds / len(cluster.replicas)
                                         for k, n in quiet.calls.items()}}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank: with 50 trials, p99 is the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- the run and its report -------------------------------------------------------------

def measure(plan: Plan) -> dict[str, Any]:
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="pdp-scaleout-") as tmp, own_database() as dsn, \
            ExitStack() as stack:
        cluster = Cluster(Path(tmp), dsn)
        cluster.start(stack, plan.idle_s)
        print("scaling: wrk through nginx", flush=True)
        scans = seq_scans(cluster.monitor)
        rounds = scaling(cluster, plan)
        time.sleep(1.0)  # PostgreSQL flushes its table statistics at most once a second
        scans = seq_scans(cluster.monitor) - scans
        print("the log's ceiling: two writer processes", flush=True)
        top = ceiling(cluster, plan)
        print("pub/sub: incident on A, seen by B", flush=True)
        pubsub = pubsub_delay(cluster, plan)
        with PostgresDecisionLog(dsn) as log:
            chain = log.verify()
    return {"rounds": rounds, "ceiling": top, "pubsub": pubsub, "plan": plan, "scans": scans,
            "chain": f"verifies, {chain.checked:,} records" if chain.ok else
            f"BROKEN at seq {chain.first_broken_seq}: {chain.detail}",
            "load": f"{load_before} before, {load_average()} after"}


COMPONENTS = ("PDP A", "PDP B", "nginx", "PostgreSQL", "Redis")


def side(rounds: list[Round], replicas: int) -> dict[str, float]:
    """Medians over one side's rounds: rate, latency, CPU µs per decision per component."""
    mine = [r for r in rounds if r.replicas == replicas]
    figures = {"rps": median(r.run.rps for r in mine),
               "p50": median(r.run.p50_ms for r in mine),
               "p99": median(r.run.p99_ms for r in mine),
               "per_commit": median(r.records / max(1, r.commits) for r in mine),
               "not_ok": sum(r.run.not_ok + r.run.errors for r in mine),
               "answered": sum(r.run.requests for r in mine),
               "records": sum(r.records for r in mine)}
    for name in COMPONENTS:
        figures[name] = median(r.cpu_s[name] / max(1, r.run.requests) * 1e6 for r in mine)
    figures["PDP"] = figures["PDP A"] + figures["PDP B"]
    figures["total"] = sum(figures[name] for name in COMPONENTS)
    return figures


def report(result: dict[str, Any]) -> str:
    plan: Plan = result["plan"]
    one, two = side(result["rounds"], 1), side(result["rounds"], 2)
    top, ps = result["ceiling"], result["pubsub"]

    def row(label: str, key: str, fmt: str = "{:,.0f}") -> str:
        ratio = two[key] / one[key] if one[key] else float("nan")
        return f"| {label} | {fmt.format(one[key])} | {fmt.format(two[key])} | {ratio:.2f}× |"

    def calls(by_command: dict[str, float], fmt: str) -> str:
        return ", ".join(f"{name} {fmt.format(n)}" for name, n in sorted(
            by_command.items(), key=lambda kv: -kv[1])) or "none"

    lines = [
        f"wrk, {plan.connections} connections, {plan.rounds} alternating rounds × "
        f"{plan.seconds:g} s per side (medians); `/v1/authorize` with a JWT-SVID (allow) "
        "through nginx (deploy/compose/nginx.conf) to `pdp serve --dev` replicas of one "
        "worker each, decision log in one fresh PostgreSQL database (synchronous_commit=on), "
        "live context in a private redis-server. Machine load (1/5/15 min): "
        f"{result['load']}. The load generator, nginx, PostgreSQL and Redis share the same "
        "2 cores as the replicas.",
        "",
        "| through nginx | 1 replica (A) | 2 replicas (A + B) | 2 ÷ 1 |",
        "|---|---:|---:|---:|",
        row("decisions/s (2 ÷ 1: the scaling ratio; 2.00× would be linear)", "rps"),
        row("latency p50 (ms)", "p50", "{:.1f}"),
        row("latency p99 (ms)", "p99", "{:.1f}"),
        row("CPU µs per decision: PDP replicas (A + B)", "PDP"),
        row("CPU µs per decision: nginx", "nginx"),
        row("CPU µs per decision: PostgreSQL backends of the replicas", "PostgreSQL"),
        row("CPU µs per decision: Redis", "Redis", "{:,.1f}"),
        row("CPU µs per decision: all of the above", "total"),
        row("log records per commit (group commit)", "per_commit", "{:.1f}"),
        f"| answers not an allow, or socket errors | {one['not_ok']:,} of {one['answered']:,} "
        f"| {two['not_ok']:,} of {two['answered']:,} | |",
        "",
        f"Sequential scans of the replicas' `decisions` table over all these rounds "
        f"(`pg_stat_user_tables`; up to one per round is this benchmark's own count): {result['scans']:,}, "
        f"for {sum(r.commits for r in result['rounds']):,} commits.",
        "",
        f"The log's ceiling: two writer processes (as two replicas' log writers) appending "
        f"{top['records']:,} realistic records through `PostgresDecisionLog` "
        f"({top['tasks']} tasks each) into one chain of their own in the same database:",
        "",
        "| the PostgreSQL log at its ceiling | figure |",
        "|---|---:|",
        f"| records/s (one chain, two writers) | {top['per_s']:,.0f} |",
        f"| records per commit | {top['per_commit']:.0f} |",
        f"| PostgreSQL backends' CPU µs per record | {top['pg_us']:,.1f} |",
        f"| writer processes' CPU µs per record (chain, COPY, event loop) | "
        f"{top['writer_us']:,.1f} |",
        f"| table + indexes, bytes per record (`pg_total_relation_size`) | "
        f"{top['stored_bytes']:,.0f} |",
        f"| WAL bytes per record (the server's whole WAL over the window: others' writes "
        f"included, an upper bound) | {top['wal_bytes']:,.0f} |",
        f"| two replicas' decisions/s ÷ the log's ceiling | {two['rps'] / top['per_s']:.3f} |",
        "",
        f"Redis pub/sub: incident declared on A (`POST /v1/context/incidents`) until B's "
        f"`/v1/authorize` denies by `{INCIDENT_POLICY}`, then lifted; {plan.trials} trials, "
        f"B polled back to back (one poll: median {ps['poll_ms']:.1f} ms, the resolution).",
        "",
        "| pub/sub | p50 | p99 |",
        "|---|---:|---:|",
    ]
    for label, key in (("declared on A → enforced by B, from A's answer (ms)", "declared"),
                       ("declared on A → enforced by B, from A's request (ms)", "from_request"),
                       ("lifted on A → lifted on B, from A's answer (ms)", "lifted")):
        values = ps[key]
        if values:
            lines.append(f"| {label} | {percentile(values, 0.5) * 1e3:.1f} "
                         f"| {percentile(values, 0.99) * 1e3:.1f} |")
        else:
            lines.append(f"| {label} | none seen | |")
    lines += [
        "",
        "| Redis cost | figure |",
        "|---|---:|",
        f"| changes not seen by B within 10 s | {ps['unseen']} of {ps['changes']} |",
        f"| Redis CPU µs per change (2 subscribers; idle rate subtracted) | "
        f"{ps['redis_us_per_change']:,.0f} |",
        f"| Redis calls per change (2 subscribers), by command | "
        f"{calls(ps['calls_per_change'], '{:.1f}')} |",
        f"| Redis CPU µs per second: alone (no client) → with the 2 replicas idle | "
        f"{ps['bare_cpu_us_per_s']:,.0f} → {ps['idle_cpu_us_per_s']:,.0f} |",
        f"| Redis calls per replica per second, idle (resync), by command | "
        f"{calls(ps['idle_calls_per_replica_s'], '{:.1f}')} |",
        "",
        f"Derived (for docs/scaling.md): one core of PDP replica does "
        f"{1e6 / two['PDP']:,.0f} decisions/s at 2 replicas ({1e6 / one['PDP']:,.0f} at 1); "
        f"one core of nginx {1e6 / max(two['nginx'], 1e-9):,.0f} requests/s; one core of "
        f"PostgreSQL backends {1e6 / max(top['pg_us'], 1e-9):,.0f} log records/s at the ceiling's group "
        f"commit ({1e6 / max(two['PostgreSQL'], 1e-9):,.0f}/s at the replicas' "
        f"{two['per_commit']:.1f} per commit). The log after the run: chain "
        f"{result['chain']}; {one['records'] + two['records']:,} decision records for "
        f"{one['answered'] + two['answered']:,} answers wrk counted.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--log-writer"]:
        return log_writer(argv[1], int(argv[2]), int(argv[3]))
    parser = argparse.ArgumentParser(prog="python -m bench scaleout")
    parser.add_argument("--quick", action="store_true", help="a smoke run (about a minute)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run [10]")
    parser.add_argument("--rounds", type=int, help="alternating rounds per side [5]")
    parser.add_argument("--trials", type=int, help="pub/sub trials [50]")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args, _ = parser.parse_known_args(argv)  # section names (python -m bench scaleout) skipped
    plan = QUICK if args.quick else Plan()
    overrides = {k: v for k, v in (("seconds", args.seconds), ("rounds", args.rounds),
                                   ("trials", args.trials)) if v is not None}
    plan = Plan(**{**plan.__dict__, **overrides})
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    text = report(measure(plan))
    print(f"machine: {machine()}\n\n{text}")
    if not args.no_record:
        command = " ".join(["python -m bench scaleout",
                            *(a for a in argv if a not in ("scaleout", "--no-record"))])
        record(SECTION, command, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
