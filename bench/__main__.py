"""Run the benchmarks: ``python -m bench`` (or ``make bench``). Writes bench/RESULTS.md."""

from __future__ import annotations

import sys

from bench import audit_log, engine_overhead, identity_cache
from bench.harness import machine, record, table


def main() -> int:
    if sys.argv[1:] == ["identity"]:  # python -m bench identity: that section only
        return identity_cache.main()
    if sys.argv[1:] == ["audit"]:  # python -m bench audit: the decision log only
        return audit_log.main()
    print(f"machine: {machine()}")
    rows = engine_overhead.run()
    text = table(rows)
    print(text)
    record("Engine overhead", "make bench", text)
    identity_cache.main()
    audit_log.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
