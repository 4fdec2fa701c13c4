"""The decision log's writer thread alone: its CPU per record, and an idle append's wait.

``python -m bench audit_writer [--against DIR] [--rounds N]`` prints, for SQLite with
``durability = "power"`` (``synchronous=FULL``) and ``"process"`` (``NORMAL``) and
for PostgreSQL, at batch sizes 1, 64 and 256:

- *writer µs/record*: CPU time of the writer thread only (its own clock,
  ``pthread_getcpuclockid``), per record: chaining, the INSERT, the commit, the
  principal index, handing outcomes back. The caller's side (``prepare``, the
  queue hand-off, the deadline timer) runs on the event loop and is not counted;
- *append wall µs* at batch size 1: how long one ``await log.append(r)`` takes
  on an otherwise idle log, i.e. what the log adds to a decision at one
  connection (two thread switches, the commit, for ``power`` its fsync).

Batches are made the way request handlers make them: ``B`` tasks each await
``append`` in one loop turn, so the writer finds all ``B`` queued; the mean
records per commit is printed to show it did. With ``--against DIR`` (another
checkout, e.g. ``/work/main``) every figure is also taken with that checkout's
``pdp`` package, alternating the two in fresh processes, and the ratio printed
(this tree ÷ that one): the before/after of a writer change in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = (("sqlite", "FULL"), ("sqlite", "NORMAL"), ("postgres", "on"))
BATCHES = (1, 64, 256)
RECORDS = {1: 2_000, 64: 12_800, 256: 25_600}  # per measurement
BOUND_S = 10.0  # as `pdp serve` sets one (timer, watchdog), wide enough for a loaded machine
PG_DSN = os.environ.get("PDP_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _child(src: str, store: str, level: str, batch: int) -> dict[str, float]:
    """One measurement in this process, with ``pdp`` imported from ``src``."""
    sys.path.insert(0, src)
    import asyncio

    from bench.audit_log import make_record
    from pdp.audit import SqliteDecisionLog

    assert __import__("pdp").__file__.startswith(src), "pdp imported from the wrong tree"
    n = RECORDS[batch]
    records = [make_record(i) for i in range(n + batch)]
    with tempfile.TemporaryDirectory(prefix="pdp-writer-bench-") as tmp:
        if store == "sqlite":
            log: Any = SqliteDecisionLog(Path(tmp) / "log.db", synchronous=level,
                                         commit_timeout_s=BOUND_S)
            cleanup = None
        else:
            log, cleanup = _postgres_log()
        try:
            async def run() -> tuple[float, float, int, int]:
                for r in records[:batch]:  # warm: connection, statements, first pages
                    await log.append(r)
                clock = time.pthread_getcpuclockid(log._thread.ident)
                commits, appended = log.commits, log.appended
                cpu, wall = time.clock_gettime(clock), time.perf_counter()
                for start in range(batch, n + batch, batch):
                    await asyncio.gather(*(log.append(r) for r in records[start:start + batch]))
                wall = time.perf_counter() - wall
                cpu = time.clock_gettime(clock) - cpu
                return cpu, wall, log.commits - commits, log.appended - appended

            cpu, wall, commits, appended = asyncio.run(run())
        finally:
            log.close()
            if cleanup is not None:
                cleanup()
    return {"writer_us": cpu / appended * 1e6, "wall_us": wall / (appended / batch) * 1e6,
            "per_commit": appended / commits}


def _postgres_log() -> tuple[Any, Any]:
    """A PostgreSQL log in a schema of its own, and the function that drops it."""
    import secrets

    import psycopg
    from psycopg.conninfo import make_conninfo

    from pdp.audit.postgres import PostgresDecisionLog

    schema = f"pdp_writer_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')

    dsn = make_conninfo(PG_DSN, options=f"-csearch_path={schema}")
    return PostgresDecisionLog(dsn, commit_timeout_s=BOUND_S), drop


def _measure(src: str, store: str, level: str, batch: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.audit_writer", "--child", src, store, level, str(batch)],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench audit_writer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", help="another checkout whose pdp is the baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args([a for a in (argv if argv is not None else sys.argv[1:])
                              if a != "audit_writer"])
    if args.child:
        src, store, level, batch = args.child
        print(json.dumps(_child(src, store, level, int(batch))))
        return 0
    trees = [("this tree", str(ROOT))]
    if args.against:
        trees.insert(0, ("baseline", str(Path(args.against).resolve())))
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds, "
          "trees alternating")
    print("| store | batch | " + " | ".join(
        f"{name}: writer µs/record | {name}: append wall µs/batch | {name}: records/commit"
        for name, _ in trees) + (" | writer µs: this ÷ baseline | wall: this ÷ baseline |"
                                 if args.against else " |"))
    for store, level in CASES:
        if args.store and store not in args.store:
            continue
        for batch in BATCHES:
            got: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
            for _ in range(args.rounds):
                for name, src in trees:
                    got[name].append(_measure(src, store, level, batch))
            med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                   for name, runs in got.items()}
            cells = [f"{store} {level}", str(batch)]
            for name, _ in trees:
                m = med[name]
                cells += [f"{m['writer_us']:.1f}", f"{m['wall_us']:.0f}", f"{m['per_commit']:.0f}"]
            if args.against:
                cells += [f"{med['this tree']['writer_us'] / med['baseline']['writer_us']:.2f}×",
                          f"{med['this tree']['wall_us'] / med['baseline']['wall_us']:.2f}×"]
            print("| " + " | ".join(cells) + " |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
