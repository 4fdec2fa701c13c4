"""HTTP: ``/v1/authorize`` through a real ``pdp serve`` beside a trivial JSON endpoint.

The server is the real one: ``pdp serve --dev --workers 2`` (one worker per
core), the durable SQLite decision log on (WAL, ``synchronous=FULL``, group
commit), a temporary state directory. The subject is a JWT-SVID minted by the
development issuer. Load comes from another process on loopback:

- **most decisions/s**: ``wrk`` (Debian's ``wrk``; a Lua script posts the JSON
  body and counts answers that are not an allow), closed loop on keep-alive
  connections; falls back to :mod:`bench.loadgen` when ``wrk`` is missing;
- **latency at a fixed 1,000 requests/s**: :mod:`bench.loadgen`, open loop, each
  request timed from when it was due (Debian has no wrk2, and wrk has no ``-R``).

To tell the HTTP layer's cost from the decision's, the same app also runs in a
server of one worker whose ``DecisionService.authorize`` is replaced by a
stored answer (:func:`stub_server`): its CPU per request is what uvicorn,
Starlette, FastAPI and our endpoint cost without verifying, deciding or logging.

The baseline is ``GET /healthz`` (``{"status": "ok"}``) on the same server, with
the same workers, connections and durations, measured in alternating rounds so
that the shared machine's noise falls on both alike. Figures are medians over
the rounds. The load generator shares the 2 cores with the two workers.

    python -m bench http            # 30 s per measurement, about 5 minutes in all
    python -m bench http --quick    # 5 s, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bench.harness import record

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
SUBJECT = "spiffe://example.org/services/etl"
CONNECTIONS = 64
RATE = 1000.0
ROUNDS = 3  # throughput: alternating rounds of duration/ROUNDS for each endpoint

LUA = r"""
wrk.method = "%(method)s"
%(body)s
%(headers)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) answered = 0; not_ok = 0 end
function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 or not string.find(body, %(expect)s, 1, true) then not_ok = not_ok + 1 end
end
function done(summary, latency, requests)
  local a, n = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("answered"); n = n + t:get("not_ok") end
  io.write(string.format("PDP_CHECK answered=%%d not_ok=%%d\n", a, n))
end
"""


@dataclass
class Endpoint:
    name: str
    path: str
    body: bytes | None
    expect: str


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    not_ok: int
    errors: int
    tool: str
    cpu_us: float = 0.0  # the server's CPU time (every process) per answered request
    idle: float = 0.0  # the machine's idle share of its CPU time during the run (/proc/stat)


class Server:
    """``pdp serve --dev --workers N`` in ``workdir`` on a free loopback port."""

    def __init__(self, workdir: Path, workers: int, *, stub: bool = False) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.log = workdir / ("stub.log" if stub else "serve.log")
        command = ([sys.executable, "-m", "bench.http", "--stub-server", str(self.port)] if stub
                   else [sys.executable, "-m", "pdp.cli.main", "serve", "--dev", "--workers",
                         str(workers), "--port", str(self.port)])
        self.process = subprocess.Popen(
            command, cwd=workdir, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        self._wait_healthy()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pdp serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    time.sleep(1.0)  # the other workers finish starting
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pdp serve did not become healthy:\n{self.log.read_text()}")

    def pids(self) -> list[int]:
        """The server's processes: the supervisor and everything it started."""
        return process_tree(self.process.pid)

    def worker_pids(self) -> list[int]:
        return [pid for pid in self.pids() if _cmdline(pid).find("spawn_main") >= 0]

    def cpu_seconds(self) -> float:
        """User + system CPU time of every server process so far."""
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def process_tree(root: int) -> list[int]:
    """``root`` and every process it started, and they started (from /proc)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += _children(pid)
    return found


def _children(pid: int) -> list[int]:
    """The processes ``pid``'s threads started (from /proc; none once it is gone)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(c) for c in task.read_text().split()]
        except OSError:
            pass
    return children


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and its descendants as one crash (an OOM kill of the container,
    ``kill -9 -PGID``).

    Killing only a supervisor would not do: its workers are told (``PR_SET_PDEATHSIG``)
    and shut down cleanly, flushing their logs. So every process is stopped first
    (SIGSTOP: nothing runs, nothing forks, nothing notices), then each is killed.
    """
    frozen: list[int] = []
    todo = [root]
    while todo:  # each stopped before its children are read: a stopped parent forks no more
        pid = todo.pop()
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        frozen.append(pid)
        todo += _children(pid)
    for pid in frozen:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def machine_times() -> tuple[int, int]:
    """The whole machine's CPU time so far, and the idle part of it (idle + iowait), in
    clock ticks (/proc/stat's first line)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time so far of ``root`` and its descendants (the living ones)."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk(url: str, endpoint: Endpoint, *, seconds: float, connections: int,
        scratch: Path) -> Run:
    """Closed loop with wrk: the most requests/s the server answers."""
    headers = 'wrk.headers["Content-Type"] = "application/json"' if endpoint.body else ""
    body = f"wrk.body = [==[{endpoint.body.decode()}]==]" if endpoint.body else ""
    script = scratch / f"{endpoint.name}.lua"
    script.write_text(LUA % {"method": "POST" if endpoint.body else "GET", "body": body,
                             "headers": headers, "expect": json.dumps(endpoint.expect)})
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
         "--timeout", "10s", "-s", str(script), url + endpoint.path],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> Run:
    """The figures of one ``wrk --latency`` run with :data:`LUA`'s answer check."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = re.search(r"(\d+) requests in", out)
    check = re.search(r"PDP_CHECK answered=(\d+) not_ok=(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Run(rps=rps, p50_ms=p50, p99_ms=p99,
               requests=int(total.group(1)) if total else 0,
               not_ok=(int(check.group(2)) if check else 0),
               errors=(sum(int(g) for g in errors.groups()) if errors else 0)
               + (int(non2xx.group(1)) if non2xx else 0), tool="wrk")


def loadgen(url: str, endpoint: Endpoint, *, seconds: float, connections: int, rate: float,
            scratch: Path) -> Run:
    """bench.loadgen in its own process: closed loop (rate 0) or open loop at ``rate``."""
    args = [sys.executable, "-m", "bench.loadgen", "--url", url + endpoint.path,
            "--duration", str(seconds), "--connections", str(connections),
            "--rate", str(rate), "--expect", endpoint.expect]
    if endpoint.body is not None:
        body_file = scratch / f"{endpoint.name}.json"
        body_file.write_bytes(endpoint.body)
        args += ["--body-file", str(body_file)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60,
                         check=True, cwd=REPO).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return Run(rps=r["rps"], p50_ms=r["p50_ms"], p99_ms=r["p99_ms"], requests=r["requests"],
               not_ok=r["not_ok"], errors=r["errors"], tool="bench.loadgen")


def authorize_endpoint(server: Server, workdir: Path) -> Endpoint:
    """``/v1/authorize`` for ``server`` (started ``--dev`` in ``workdir``): SUBJECT reads
    sales-daily with a JWT-SVID of the dev issuer, an allow. Asked once here, because a
    figure is worth taking only on that answer."""
    from pdp.identity.dev_issuer import DevIssuer

    token = DevIssuer.load_or_create(workdir / ".pdp").mint(SUBJECT, ttl_s=3600)
    body = json.dumps({"subject": {"token": token}, "action": "read",
                       "resource": {"type": "App::Dataset", "id": "sales-daily"}},
                      separators=(",", ":")).encode()
    first = httpx.post(f"{server.url}/v1/authorize", content=body,
                       headers={"content-type": "application/json"}).json()
    assert first["decision"] == "allow", first
    return Endpoint("authorize", "/v1/authorize", body, '"decision":"allow"')


def measure(*, seconds: float, workers: int = 2, connections: int = CONNECTIONS,
            rate: float = RATE, rounds: int = ROUNDS, use_wrk: bool | None = None,
            profile_seconds: float | None = None) -> dict[str, object]:
    """Start the server, drive it, stop it; the figures and how they were taken.

    ``profile_seconds``: afterwards, drive ``/v1/authorize`` that long once more with
    py-spy sampling every worker, for :func:`breakdown` (skipped without py-spy).
    """
    use_wrk = shutil.which("wrk") is not None if use_wrk is None else use_wrk
    with tempfile.TemporaryDirectory(prefix="pdp-bench-http-") as tmp:
        workdir = Path(tmp)
        shutil.copytree(POLICIES, workdir / "policies")
        server = Server(workdir, workers)
        try:
            authorize = authorize_endpoint(server, workdir)
            healthz = Endpoint("healthz", "/healthz", None, '"status":"ok"')

            def drive(ep: Endpoint, secs: float, conns: int, at_rate: float) -> Run:
                cpu = server.cpu_seconds()
                if at_rate == 0 and use_wrk:
                    run = wrk(server.url, ep, seconds=secs, connections=conns, scratch=workdir)
                else:
                    run = loadgen(server.url, ep, seconds=secs, connections=conns,
                                  rate=at_rate, scratch=workdir)
                run.cpu_us = (server.cpu_seconds() - cpu) / max(1, run.requests) * 1e6
                return run

            per_round = seconds / rounds
            max_runs: dict[str, list[Run]] = {"authorize": [], "healthz": []}
            for _ in range(rounds):  # alternate: noise falls on both alike
                for ep in (healthz, authorize):
                    max_runs[ep.name].append(drive(ep, per_round, connections, 0))
            fixed = {ep.name: drive(ep, seconds, 32, rate) for ep in (healthz, authorize)}
            samples = None
            if profile_seconds:
                samples = _profile(server, lambda: drive(authorize, profile_seconds,
                                                         connections, 0), workdir)
        finally:
            server.stop()
        stub = Server(workdir, 1, stub=True)  # the HTTP layer alone, same request
        try:
            cpu = stub.cpu_seconds()
            if use_wrk:
                stub_run = wrk(stub.url, authorize, seconds=per_round, connections=connections,
                               scratch=workdir)
            else:
                stub_run = loadgen(stub.url, authorize, seconds=per_round,
                                   connections=connections, rate=0, scratch=workdir)
            stub_run.cpu_us = (stub.cpu_seconds() - cpu) / max(1, stub_run.requests) * 1e6
        finally:
            stub.stop()
        records = _decision_records(workdir / ".pdp" / "decisions.db")
        verify = subprocess.run([sys.executable, "-m", "pdp.cli.main", "audit", "verify"],
                                cwd=workdir, capture_output=True, text=True, timeout=600)
    return {"max": max_runs, "fixed": fixed, "records": records,
            "chain": (verify.stdout or verify.stderr).strip().splitlines()[-1:],
            "tool": "wrk" if use_wrk else "bench.loadgen", "connections": connections,
            "workers": workers, "seconds": seconds, "rate": rate, "rounds": rounds,
            "breakdown": breakdown(samples) if samples else None, "stub": stub_run}


def _decision_records(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM decisions WHERE kind = 'decision'")
                   .fetchone()[0])


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _profile(server: Server, load: Callable[[], Run], scratch: Path) -> list[tuple[list[str], int]] | None:
    """py-spy (``record --nonblocking``, raw stacks) on every worker while ``load`` runs."""
    spy = _py_spy()
    if spy is None:
        return None
    procs = []
    for pid in server.worker_pids():
        out = scratch / f"py-spy-{pid}.txt"
        procs.append((out, subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--nonblocking", "--gil", "--threads", "--rate", "250",
             "--format", "raw", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    time.sleep(1.0)  # py-spy attaches
    load()
    samples: list[tuple[list[str], int]] = []
    for out, proc in procs:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            continue
        if out.exists():
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    samples.append((stack.split(";"), int(count)))
    return samples


# Leaf frames of a thread that waits (py-spy's idle detection misses some on this VM).
_WAITING = ("wait (threading.py", "get (queue.py", "_recv (", "select (", "sleep (",
            "poll (", "accept (", "wait (selectors.py", "always_pong", "recv (")

CATEGORIES = (
    ("decision log writer thread: chain, INSERT, commit (fsync)", ("GroupCommitLog._run",)),
    ("Cedar evaluation (cedarpy, in Rust)", ("is_authorized (pdp/engine/cedar_call.py",)),
    ("engine around Cedar: entities, policy slice, result", ("evaluate (pdp/engine/evaluate.py",)),
    ("decision record (dict for the log)", ("decision_record (pdp/decision/record.py",)),
    ("decide(): context, reasons, explanation", ("decide (pdp/decision/decide.py",)),
    ("service: verify (cached), live context, grants", ("DecisionService._decide",)),
    ("log append: record text, queue, wake-up; metrics, behaviour", ("DecisionService._commit",)),
    ("endpoint: body (pydantic), PEP check, input, response (orjson)",
     ("authorize (pdp/api/authorize.py", "answer_evaluation (pdp/api/authzen.py",
      "FastPath.__call__")),
    ("HTTP: uvicorn/httptools, Starlette, FastAPI, pydantic", ("RequestResponseCycle", "ASGI",
                                                               "fastapi", "starlette")),
    ("other threads (maintenance, watchers)", ("Thread.run",)),
)


def breakdown(samples: list[tuple[list[str], int]]) -> list[tuple[str, float]]:
    """Share of the workers' busy samples in each part of the request path."""
    counts: dict[str, int] = {}
    busy = 0
    for frames, n in samples:
        leaf = frames[-1]
        if any(w in leaf for w in _WAITING):
            continue
        joined = ";".join(frames)
        name = "event loop (uvloop, in C: sockets, callbacks)"
        for label, marks in CATEGORIES:
            if any(m in joined for m in marks):
                name = label
                break
        counts[name] = counts.get(name, 0) + n
        busy += n
    return sorted(((k, v / busy) for k, v in counts.items()), key=lambda kv: -kv[1])


def report(result: dict[str, object]) -> str:
    max_runs: dict[str, list[Run]] = result["max"]  # type: ignore[assignment]
    fixed: dict[str, Run] = result["fixed"]  # type: ignore[assignment]
    a_rps = median(r.rps for r in max_runs["authorize"])
    h_rps = median(r.rps for r in max_runs["healthz"])
    ratio = a_rps / h_rps
    a_p50 = median(r.p50_ms for r in max_runs["authorize"])
    a_p99 = median(r.p99_ms for r in max_runs["authorize"])
    h_p50 = median(r.p50_ms for r in max_runs["healthz"])
    h_p99 = median(r.p99_ms for r in max_runs["healthz"])
    a_cpu = median(r.cpu_us for r in max_runs["authorize"])
    h_cpu = median(r.cpu_us for r in max_runs["healthz"])
    fa, fh = fixed["authorize"], fixed["healthz"]
    stub: Run = result["stub"]  # type: ignore[assignment]
    tool = result["tool"]
    c, secs, rounds = result["connections"], result["seconds"], result["rounds"]
    bad = {name: (sum(r.not_ok for r in runs), sum(r.errors for r in runs))
           for name, runs in max_runs.items()}

    def ok(good: bool) -> str:
        return "met" if good else "**not met**"

    lines = [
        "| measurement | /v1/authorize (JWT-SVID, SQLite log) | /healthz (trivial JSON) | ratio | target |",
        "|---|---:|---:|---:|---|",
        f"| most requests/s ({tool}, {c} connections, {rounds} × {secs / rounds:.3g} s, median) "
        f"| {a_rps:,.0f} | {h_rps:,.0f} | {ratio:.2f} "
        f"| ≥ 3,000 decisions/s: {ok(a_rps >= 3000)}; ≥ 0.35 of trivial: {ok(ratio >= 0.35)} |",
        f"| latency p50 / p99 at that load (ms) | {a_p50:.1f} / {a_p99:.1f} "
        f"| {h_p50:.1f} / {h_p99:.1f} | | |",
        f"| server CPU per request, all processes (µs, median) | {a_cpu:,.0f} | {h_cpu:,.0f} "
        f"| {a_cpu / h_cpu:.1f} | |",
        f"| the same, HTTP layer alone: one worker, `DecisionService.authorize` answering a "
        f"stored decision (µs) | {stub.cpu_us:,.0f} | {h_cpu:,.0f} | {stub.cpu_us / h_cpu:.1f} | |",
        f"| latency p50 / p99 at a fixed {result['rate']:,.0f} requests/s "
        f"(bench.loadgen, open loop, {secs:g} s; ms) | {fa.p50_ms:.2f} / {fa.p99_ms:.2f} "
        f"| {fh.p50_ms:.2f} / {fh.p99_ms:.2f} | {fa.p99_ms / fh.p99_ms:.2f} (p99) "
        f"| p99 ≤ 25 ms: {ok(fa.p99_ms <= 25)} |",
    ]
    notes = [
        "",
        f"Server: `pdp serve --dev --workers {result['workers']}` on loopback, SQLite decision "
        "log (WAL, synchronous=FULL, group commit), in-memory live context; the load "
        "generator runs on the same 2 cores.",
        f"Every answer checked: authorize not-allow answers {bad['authorize'][0]}, socket errors "
        f"{bad['authorize'][1]}; healthz not-ok {bad['healthz'][0]}, errors {bad['healthz'][1]}; "
        f"fixed rate: {fa.requests:,} decisions ({fa.not_ok} not allow, {fa.errors} errors), "
        f"{fh.requests:,} healthz.",
        f"Decision log after the run: {result['records']:,} decision records; "
        f"`pdp audit verify`: {' '.join(result['chain'])}",  # type: ignore[arg-type]
    ]
    shares: list[tuple[str, float]] | None = result.get("breakdown")  # type: ignore[assignment]
    if shares:
        notes += ["", "Where a decision's time goes: py-spy on both workers during one more "
                  "closed-loop run of /v1/authorize, sampling the thread that holds the GIL "
                  "(`--gil`; C code that releases it, such as SQLite's I/O, is not seen). "
                  f"Shares of those samples, and that share of the {a_cpu:,.0f} µs of CPU a "
                  "decision costs in all:", "",
                  "| part of the request path | share | ≈ µs per decision |", "|---|---:|---:|"]
        notes += [f"| {name} | {share:.0%} | {share * a_cpu:,.0f} |" for name, share in shares]
    return "\n".join(lines + notes)


def stored_decision_components(policies: Path, *, state_dir: Path | None) -> tuple[Any, str]:
    """Dev components (memory log) whose service answers every ``/v1/authorize`` with one
    decision taken once, SUBJECT reading sales-daily, instead of verifying, deciding and
    logging: what is left of a request is the HTTP and API layers' own cost. Returns them
    and the dev issuer's token of that decision."""
    from pdp.components import build_components
    from pdp.config import load_settings
    from pdp.decision.model import AuthorizeInput, Decision, ResourceRef
    from pdp.identity.model import BearerToken

    settings = load_settings(None, dev=True, policies=policies, audit={"backend": "memory"},
                             **({} if state_dir is None else {"state_dir": state_dir}))
    components = build_components(settings)
    assert components.dev_issuer is not None
    token = components.dev_issuer.mint(SUBJECT, ttl_s=3600)
    stored = components.service.authorize_sync(AuthorizeInput(
        credential=BearerToken(token), action="read",
        resource=ResourceRef(type="App::Dataset", id="sales-daily"), context={}))

    async def answer(_: AuthorizeInput) -> Decision:
        return stored

    components.service.authorize = answer  # type: ignore[method-assign]
    return components, token


def stub_server(port: int) -> None:
    """Serve the app like ``pdp serve --dev`` (one worker) with a stored decision instead
    of verifying, deciding and logging: the HTTP layer's own cost."""
    import uvicorn

    from pdp.server import create_app

    components, _ = stored_decision_components(Path("policies"), state_dir=None)
    uvicorn.run(create_app(components), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--stub-server"]:
        stub_server(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench http")
    parser.add_argument("--quick", action="store_true", help="5 s per measurement")
    parser.add_argument("--seconds", type=float, help="seconds per measurement [30]")
    parser.add_argument("--loadgen", action="store_true", help="bench.loadgen even if wrk exists")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy breakdown")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args, _ = parser.parse_known_args(argv)  # section names (python -m bench http) skipped
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    result = measure(seconds=seconds, use_wrk=False if args.loadgen else None,
                     profile_seconds=None if args.no_profile else min(seconds, 10.0))
    text = report(result)
    print(text)
    if not args.no_record:
        command = "python -m bench http" + (" --quick" if args.quick else "")
        record("HTTP: /v1/authorize beside a trivial endpoint", command, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
