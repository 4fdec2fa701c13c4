"""Timing helpers: interleaved rounds, medians, ratios, and RESULTS.md rows."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass(frozen=True)
class Comparison:
    name: str
    ours_us: float
    baseline_us: float
    baseline_name: str
    target: str
    # The target as a number, so that the table says met / not met: ours ÷ baseline at
    # most ``at_most``, or baseline ÷ ours at least ``faster_at_least``.
    at_most: float | None = None
    faster_at_least: float | None = None

    @property
    def ratio(self) -> float:
        return self.ours_us / self.baseline_us

    def ratio_text(self) -> str:
        """``1.04×`` when we cost about as much; ``94× faster`` when we cost far less (a
        "0.01" hides whether 94 or 120 times, i.e. whether a ≥ 100× target was met)."""
        if self.faster_at_least is not None and self.ratio < 1:
            return f"{self.baseline_us / self.ours_us:.0f}× faster"
        return f"{self.ratio:.2f}×"

    def target_text(self) -> str:
        if self.at_most is not None:
            met = self.ratio <= self.at_most
        elif self.faster_at_least is not None:
            met = self.baseline_us / self.ours_us >= self.faster_at_least
        else:
            return self.target
        return f"{self.target}: **{'met' if met else 'not met'}**"


def compare(ours: Callable[[], object], baseline: Callable[[], object], *, rounds: int = 15,
            per_round: int = 300, warmup: int = 300,
            baseline_per_round: int | None = None) -> tuple[float, float]:
    """Median microseconds per call of ``ours`` and ``baseline``, alternating rounds so that
    noise from the shared machine falls on both alike. A slow baseline may run fewer calls
    per round (``baseline_per_round``) without shortening our rounds."""
    for _ in range(warmup):
        ours()
    for _ in range(min(warmup, baseline_per_round or warmup)):
        baseline()
    ours_rounds, base_rounds = [], []
    for _ in range(rounds):
        base_rounds.append(_per_call(baseline, baseline_per_round or per_round))
        ours_rounds.append(_per_call(ours, per_round))
    return median(ours_rounds) * 1e6, median(base_rounds) * 1e6


def _per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def table(rows: list[Comparison]) -> str:
    lines = ["| benchmark | ours (median µs) | baseline | baseline (median µs) | ratio | target |",
             "|---|---:|---|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.ours_us:.1f} | {r.baseline_name} | {r.baseline_us:.1f} "
                     f"| {r.ratio_text()} | {r.target_text()} |")
    return "\n".join(lines)


def record(section: str, command: str, body: str) -> None:
    """Replace (or add) ``section`` in RESULTS.md with this run's figures."""
    header = f"## {section}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{header}\n\nCommand: `{command}` — {stamp}, {machine()}\n\n{body}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if header in text:
        start = text.index(header)
        end = text.find("\n## ", start + len(header))
        text = text[:start] + block + ("\n" + text[end + 1:] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text)


def print_or_record(result: dict[str, float], *, as_json: bool,
                    report: Callable[[dict[str, float]], str], section: str,
                    command: str) -> int:
    """A section's ending: ``--json`` prints the figures only (to compare two trees);
    otherwise the report is printed and recorded as ``section`` of RESULTS.md."""
    if as_json:
        import json

        print(json.dumps(result))
        return 0
    text = report(result)
    print(text)
    record(section, command, text)
    return 0
