"""A finer GIL switch interval while a bundle loads beside a serving event loop.

A reload in a serving process (``pdp serve`` with one worker) runs in a thread beside
the event loop. Whenever the loop wants the GIL back (after every socket read, every
commit it waited for) it waits until the loading thread is asked to drop it, which
CPython does every ``sys.getswitchinterval()`` (5 ms by default); a request that hands
the GIL over a dozen times waits a dozen intervals. Lowering the interval to
:data:`RELOAD_SWITCH_S` for the load halved p99 and max latency during a reload of
10,000 policies (bench/RESULTS.md, "Issue 16, round 5"); the load itself took as long.

The interval belongs to the interpreter, so nested or concurrent loads (two stores in
one process, as tests have) are counted: the first one in lowers it, the last one out
restores what it was before the first.
Ref: https://docs.python.org/3/library/sys.html#sys.setswitchinterval
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

RELOAD_SWITCH_S = 0.0005
"""The switch interval while a load shares the GIL with a serving loop (0.1 ms did no
better in the same measurement)."""


class _FineSwitching:
    """The count of loads under way and the interval to restore after the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._before = 0.0

    @contextmanager
    def during(self, interval_s: float = RELOAD_SWITCH_S) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._before = sys.getswitchinterval()
                sys.setswitchinterval(min(interval_s, self._before))
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    sys.setswitchinterval(self._before)


fine_switching = _FineSwitching().during
"""``with fine_switching(): ...`` runs the block with the finer interval."""
