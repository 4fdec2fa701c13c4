"""What checking the hourly rollups adds to ``verify`` on the console's big log (issue 19).

``python -m bench rollup_verify`` (``BENCH_CONSOLE_N`` sets the log size as for
``bench console``; default here 1,000,000). The log is the console bench's generated
one (its hash chain is not real, so the chain walk itself is not timed here). Timed,
alternating round by round: :func:`pdp.audit.rollups.check_store` (every caught-up
hour recounted from the rows and compared in the store) beside
:func:`pdp.audit.rollups.rebuild_store` (the same ``GROUP BY`` counts written back: the
repair, and what the one-time build costs) — a ratio from the same run, not a figure
to compare across runs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BENCH_CONSOLE_N", "1000000")

from bench.console import ADMIN_N, N, generate  # noqa: E402 - reads BENCH_CONSOLE_N
from bench.harness import record  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROLLUP_ROUNDS", "3"))


def main() -> int:
    from pdp.audit import SqliteDecisionLog, rollups

    work = Path(tempfile.mkdtemp(prefix="pdp-bench-rollup-verify-"))
    try:
        path = work / "decisions.db"
        took, built = generate(path)
        print(f"generated {N:,} decisions in {took:.1f} s, rollup built in {built:.1f} s",
              flush=True)
        store = SqliteDecisionLog(path)
        check_s: list[float] = []
        rebuild_s: list[float] = []
        try:
            for _ in range(ROUNDS):
                began = time.perf_counter()
                report = rollups.check_store(store)
                check_s.append(time.perf_counter() - began)
                assert report is not None and report.ok and report.compared, report
                began = time.perf_counter()
                rollups.rebuild_store(store)
                rebuild_s.append(time.perf_counter() - began)
                print(f"check {check_s[-1]:.2f} s, rebuild {rebuild_s[-1]:.2f} s", flush=True)
            hours = report.hours
        finally:
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    check, rebuild = statistics.median(check_s), statistics.median(rebuild_s)
    body = (f"A log of {N:,} generated decisions and {ADMIN_N:,} admin events (SQLite), "
            f"{hours:,} hours in its rollup; median of {ROUNDS} rounds, alternating. "
            f"Load average at the end: {os.getloadavg()[0]:.1f}.\n\n"
            "| step | median (s) |\n|---|---:|\n"
            f"| verify's rollup check (recount + compare, read only) | {check:.2f} |\n"
            f"| rebuild of the rollups (the repair) | {rebuild:.2f} |\n\n"
            f"Ratio check / rebuild: {check / rebuild:.2f}.")
    print(body)
    record("Console: verify covers the hourly rollups (issue 19, hroll)",
           "python -m bench rollup_verify", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
