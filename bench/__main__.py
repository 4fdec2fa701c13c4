"""Run the benchmarks: ``python -m bench`` (or ``make bench``) runs every section;
``python -m bench SECTION ...`` runs the named ones. Each writes its section of
bench/RESULTS.md with the command, the machine and the date."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import audit_log, broker, engine_overhead, identity_cache, scale
from bench.harness import Comparison, machine, record, table


def _table_section(title: str, command: str, run: Callable[[], list[Comparison]]) -> Callable[[], int]:
    def main() -> int:
        text = table(run())
        print(text)
        record(title, command, text)
        return 0

    return main


SECTIONS: dict[str, Callable[[], int]] = {
    "engine": _table_section("Engine overhead", "python -m bench engine", engine_overhead.run),
    "scale": _table_section("Scale with policy count", "python -m bench scale", scale.run),
    "identity": identity_cache.main,
    "audit": audit_log.main,
    "broker": broker.main,
}


def register(name: str, main: Callable[[], int]) -> None:
    """Benchmarks that live in optional modules add themselves here."""
    SECTIONS[name] = main


def main() -> int:
    _register_optional()
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(f"usage: python -m bench [SECTION ...] [OPTIONS]\n(no section: all of them)\n"
              f"sections: {' '.join(sorted(SECTIONS))}\n"
              "a section's own options: python -m bench SECTION --help")
        return 0
    # Options (`python -m bench http --quick`) are for the sections that know them.
    # The sections are the words before the first option (an option's value is not one).
    args = sys.argv[1:]
    first_option = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    wanted = args[:first_option] or list(SECTIONS)
    unknown = [w for w in wanted if w not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {sorted(SECTIONS)}", file=sys.stderr)
        return 2
    print(f"machine: {machine()}")
    status = 0
    for name in wanted:
        print(f"\n== {name}")
        status |= SECTIONS[name]() or 0
    return status


def _register_optional() -> None:
    for module in ("http", "api_layer", "cedarling", "memory", "console", "startup", "durability",
                   "cerbos_peer", "scaleout", "rollup_verify", "audit_writer", "loop_thread"):
        try:
            imported = __import__(f"bench.{module}", fromlist=["main"])
        except ImportError:
            continue
        if hasattr(imported, "main"):
            register(module, imported.main)


if __name__ == "__main__":
    sys.exit(main())
