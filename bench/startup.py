"""Start and reload at 10,000 policies (issue 16): ``pdp serve`` from launch to
``/readyz`` with one worker and with two, the memory of the whole process tree, and
decision latency while the bundle is reloaded.

Every figure is a ratio against a baseline measured in the same run, because the
machine is shared and absolute times move with its load:

- start: the 10,000-policy bundle against the example bundle (18 policies), one worker,
  the same command; the difference is what the bundle costs to load.
- restart: the 10,000-policy bundle started again on the state directory of the
  one-worker run, whose validation verdicts (``pdp.engine.validation_cache``) and
  policy facts (``pdp.engine.scope_cache``: no file is parsed into nodes) it finds.
- memory: the tree's PSS (proportional set size: a page shared by k processes counts
  1/k in each, so the sum is what the tree really holds) with two workers against one.
  RSS, which counts a shared page in every process, is printed beside it.
- every ``pdp serve`` starts as an installed ``pdp`` or ``make run`` starts it: on the
  package's compiled modules (compiled first; an environment's ``PYTHONDONTWRITEBYTECODE=1``
  is not passed on, else every start compiles the package again, ~0.2 s of its CPU).
- reload: p99 (and max) latency of ``/v1/authorize`` (one connection, one request at a
  time) from the change of a policy file until the answers carry the new version,
  against p99 of the same requests before the change.

    python -m bench startup

``python -m bench startup --reload [--against DIR] [--rounds N]`` measures only the
reload, with one worker (``pdp serve``: a supervisor and one worker since branch hsolo;
before it, one process that reloaded beside its traffic) and with two (``--workers 2``):
the supervisor loads the new bundle and replaces the workers, each against its own p99
before the change;
with ``--against`` another checkout's ``pdp`` (its own ``.venv``) is measured too, the
two trees alternating round by round, and the ratios are set side by side.
"""

from __future__ import annotations

import argparse
import compileall
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import httpx

from bench.generate import generate_bundle
from bench.harness import record

REPO = Path(__file__).resolve().parents[1]
POLICIES = 10_000
TARGET_READY_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``pdp serve --dev`` on ``policies`` with ``workers`` workers, timed to ``/readyz``
    (the ``pdp`` of ``tree``: this checkout, or another with its own ``.venv``)."""

    def __init__(self, policies: Path, state: Path, workers: int, tree: Path = REPO) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = state
        python = sys.executable if tree == REPO else str(tree / ".venv" / "bin" / "python")
        for package in ("pdp", "context"):  # up to date: only stats their files
            compileall.compile_dir(tree / package, quiet=1)
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [python, "-m", "pdp.cli.main", "serve", "--dev", "--policies", str(policies),
             "--state-dir", str(state), "--port", str(self.port), "--workers", str(workers)],
            cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_serve_env())
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("pdp serve exited")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.ready_s = time.perf_counter() - started
        if workers > 1:  # /readyz answered by one; wait until every worker is there
            while len(_children(self.process.pid)) < workers:
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def _serve_env() -> dict[str, str]:
    """This environment, but for ``PYTHONDONTWRITEBYTECODE``: the Makefile does not pass it
    on either (see its comment), and pip compiles what it installs."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _tree_memory_mb(pid: int) -> dict[str, float]:
    """Sum of Rss and Pss over ``pid`` and its descendants, in MB."""
    total = {"Rss": 0.0, "Pss": 0.0}
    todo = [pid]
    while todo:
        p = todo.pop()
        todo += _children(p)
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                key = line.split(":")[0]
                if key in total:
                    total[key] += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def _token(state: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pdp.cli.main", "token", "--state-dir", str(state), "--spiffe-id",
         "spiffe://example.org/team0/w0"], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _reload_latencies(server: Serve, policies: Path, token: str) -> dict[str, Any]:
    """Latency of one keep-alive connection, one request at a time: 300 requests, then
    from a change of the files until the answers carry the new version and none of the
    workers there were before the change is left (replaced ones drain first). A failed
    request (a connection closed under it) is counted and asked again."""
    body = {"subject": {"token": token}, "action": "read",
            "resource": {"type": "Gen::Dataset", "id": "ds0"}}
    steady: list[float] = []
    during: list[float] = []
    errors = 0
    with httpx.Client(timeout=60) as client:
        def ask() -> tuple[float, Any]:
            nonlocal errors
            while True:
                t = time.perf_counter()
                try:
                    r = client.post(f"{server.url}/v1/authorize", json=body)
                    return (time.perf_counter() - t) * 1000, r.json().get("policy_version")
                except httpx.HTTPError:
                    errors += 1
        for _ in range(300):
            steady.append(ask()[0])
        old = ask()[1]
        workers_before = set(_children(server.process.pid))
        errors = 0
        with (policies / "policies.cedar").open("a") as f:
            f.write("\n// bench: a new version\n")
        changed = time.perf_counter()
        version = old
        # Replaced workers (new pids: the supervisor's rollout) are waited for; workers
        # that reload in place (no new pid) are done when the answers change.
        while time.perf_counter() - changed < 180:
            workers = set(_children(server.process.pid))
            rolling = bool(workers - workers_before)
            if version != old and not (rolling and workers & workers_before):
                break
            ms, version = ask()
            during.append(ms)
        reload_s = time.perf_counter() - changed
    return {"steady": steady, "during": during, "reload_s": reload_s,
            "reloaded": version != old, "errors": errors}


def _p99(values: list[float]) -> float:
    return quantiles(values, n=100, method="inclusive")[98] if len(values) >= 2 else values[0]


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pdp-startup-") as tmp:
        big = Path(tmp) / "b10k"
        generate_bundle(big, policies=POLICIES)
        out: dict[str, Any] = {}
        small = Serve(REPO / "policies", Path(tmp) / "s-small", 1)
        out["small_ready_s"] = small.ready_s
        small.stop()
        for workers in (1, 2):
            server = Serve(big, Path(tmp) / f"s{workers}", workers)
            time.sleep(1)  # let the workers settle before reading their memory
            out[f"ready_{workers}"] = server.ready_s
            out[f"mem_{workers}"] = _tree_memory_mb(server.process.pid)
            out["reload" if workers == 1 else f"reload_{workers}"] = _reload_latencies(
                server, big, _token(server.state))
            server.stop()
        # A restart on the state directory of the last server, which loaded the files as
        # they are now (each reload above appended to them): the policies Cedar's validator
        # passed are not validated again (pdp.engine.validation_cache), nor parsed into
        # nodes (pdp.engine.scope_cache). The first server's directory would hold verdicts
        # for text the second server's reload has since changed: a first start in effect.
        restarted = Serve(big, Path(tmp) / "s2", 1)
        out["ready_restart_1"] = restarted.ready_s
        restarted.stop()
    return out


def report(r: dict[str, Any]) -> str:
    small = r["small_ready_s"]
    m1, m2 = r["mem_1"], r["mem_2"]
    rl = r["reload"]
    p99_steady, p99_during = _p99(rl["steady"]), _p99(rl["during"])
    met = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    rows = [
        "| measurement | 10,000 policies | baseline (same run) | ratio | target |",
        "|---|---:|---|---:|---|",
        f"| `pdp serve` to /readyz, 1 worker | {r['ready_1']:.2f} s | example bundle, 1 worker: "
        f"{small:.2f} s | {r['ready_1'] / small:.1f}× | ≤ {TARGET_READY_S:g} s: "
        f"{met(r['ready_1'] <= TARGET_READY_S)} |",
        f"| `pdp serve` to /readyz, 2 workers | {r['ready_2']:.2f} s | example bundle, 1 worker: "
        f"{small:.2f} s | {r['ready_2'] / small:.1f}× | ≤ {TARGET_READY_S:g} s: "
        f"{met(r['ready_2'] <= TARGET_READY_S)} |",
        *([f"| `pdp serve` to /readyz, 1 worker, restarted on its state directory | "
           f"{r['ready_restart_1']:.2f} s | example bundle, 1 worker: {small:.2f} s | "
           f"{r['ready_restart_1'] / small:.1f}× | ≤ {TARGET_READY_S:g} s: "
           f"{met(r['ready_restart_1'] <= TARGET_READY_S)} |"] if "ready_restart_1" in r else []),
        f"| memory of the process tree, 2 workers (PSS) | {m2['Pss']:.0f} MB | 1 worker: "
        f"{m1['Pss']:.0f} MB | {m2['Pss'] / m1['Pss']:.2f}× | ≤ 1.3×: "
        f"{met(m2['Pss'] / m1['Pss'] <= 1.3)} |",
        f"| memory of the process tree, 2 workers (RSS, shared pages counted twice) | "
        f"{m2['Rss']:.0f} MB | 1 worker: {m1['Rss']:.0f} MB | {m2['Rss'] / m1['Rss']:.2f}× | — |",
        f"| /v1/authorize p99 during a reload ({len(rl['during'])} requests, "
        f"{rl['reload_s']:.1f} s) | {p99_during:.1f} ms (max {max(rl['during']):.0f} ms) | "
        f"p99 before it: {p99_steady:.1f} ms | {p99_during / p99_steady:.1f}× | "
        f"no stall (reported) |",
    ]
    rl2 = r.get("reload_2")
    if rl2 is not None:  # the supervisor loads and replaces the workers (pdp.cli.workers)
        before2, during2 = _p99(rl2["steady"]), _p99(rl2["during"])
        rows.append(
            f"| /v1/authorize p99 during a reload, 2 workers ({len(rl2['during'])} requests, "
            f"{rl2['reload_s']:.1f} s, {rl2['errors']} errors) | {during2:.1f} ms (max "
            f"{max(rl2['during']):.0f} ms) | p99 before it: {before2:.1f} ms | "
            f"{during2 / before2:.1f}× | no stall (reported) |")
    return "\n".join(rows) + (
        "\n\nStart is launch to the first 200 from `/readyz` (with two workers, the first worker "
        "ready; the supervisor loads once and forks both). Memory is read from "
        "`/proc/<pid>/smaps_rollup` of the supervisor and its workers after start. "
        "Reload: one connection, one request at a time, from appending a comment to the "
        "policy file until an answer carries the new `policy_version`"
        + ("" if rl["reloaded"] else " (**the new version never arrived**)") + ".")


def run_reloads(trees: list[tuple[str, Path]], rounds: int) -> list[dict[str, Any]]:
    """Per round, per tree (alternating), per worker count: the reload latencies."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pdp-reload-") as tmp:
        for n in range(rounds):
            for name, tree in trees:
                for workers in (1, 2):
                    big = Path(tmp) / f"b{n}-{name}-{workers}"
                    generate_bundle(big, policies=POLICIES)
                    server = Serve(big, Path(tmp) / f"s{n}-{name}-{workers}", workers, tree)
                    try:
                        time.sleep(1)  # the workers settle
                        got = _reload_latencies(server, big, _token(server.state))
                    finally:
                        server.stop()
                    rows.append({"round": n + 1, "tree": name, "workers": workers,
                                 "load": os.getloadavg()[0], **got})
                    print(_reload_row(rows[-1]), flush=True)
    return rows


RELOAD_HEADER = ("| round | tree | workers | p99 before | p99 during | during ÷ before | max during "
                 "| answered during | reload to last old worker gone | errors | load avg |\n"
                 "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def _reload_row(r: dict[str, Any]) -> str:
    before, during = _p99(r["steady"]), _p99(r["during"])
    return (f"| {r['round']} | {r['tree']} | {r['workers']} | {before:.1f} ms | {during:.1f} ms | "
            f"{during / before:.1f}× | {max(r['during']):.0f} ms | {len(r['during'])} | "
            f"{r['reload_s']:.1f} s{'' if r['reloaded'] else ' (**never reloaded**)'} | "
            f"{r['errors']} | {r['load']:.1f} |")


def reload_report(rows: list[dict[str, Any]]) -> str:
    """Every round, then the median ratio per tree and worker count."""
    lines = [RELOAD_HEADER, *(_reload_row(r) for r in rows), "",
             "| tree | workers | median p99 during ÷ before | median max during | errors |",
             "|---|---:|---:|---:|---:|"]
    for key in dict.fromkeys((r["tree"], r["workers"]) for r in rows):
        mine = [r for r in rows if (r["tree"], r["workers"]) == key]
        ratio = median(_p99(r["during"]) / _p99(r["steady"]) for r in mine)
        lines.append(f"| {key[0]} | {key[1]} | {ratio:.1f}× | "
                     f"{median(max(r['during']) for r in mine):.0f} ms | "
                     f"{sum(r['errors'] for r in mine)} |")
    return "\n".join(lines) + (
        "\n\nOne keep-alive connection, one request at a time; p99 before: 300 requests; "
        "during: from appending a comment to the policy file until the answers carry the new "
        "`policy_version` and, where workers are replaced, the last old one has exited. "
        "A request that failed (its connection closed by a replaced worker) is counted in "
        "errors and asked again.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reload", action="store_true", help="the reload rows only")
    parser.add_argument("--against", help="another checkout whose pdp is the baseline")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args([a for a in (argv if argv is not None else sys.argv[1:])
                              if a != "startup"])
    if args.reload:
        trees = [("this tree", REPO)]
        if args.against:
            trees.insert(0, ("baseline", Path(args.against).resolve()))
        body = reload_report(run_reloads(trees, args.rounds))
        print(body)
        record("Reload at 10,000 policies, 1 and 2 workers",
               "python -m bench startup --reload" + (" --against DIR" if args.against else ""),
               body)
        return 0
    result = run()
    body = report(result)
    print(body)
    record("Start and reload at 10,000 policies", "python -m bench startup", body)
    return 0


__all__ = ["main", "run"]
