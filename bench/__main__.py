"""Run the benchmarks: ``python -m bench`` (or ``make bench``). Writes bench/RESULTS.md."""

from __future__ import annotations

import sys

from bench import engine_overhead
from bench.harness import machine, record, table


def main() -> int:
    print(f"machine: {machine()}")
    rows = engine_overhead.run()
    text = table(rows)
    print(text)
    record("Engine overhead", "make bench", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
