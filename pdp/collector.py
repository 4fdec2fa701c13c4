"""Python's cyclic garbage collector paused around work that builds objects which live on.

The collector runs when allocations outnumber deallocations by a threshold, and each
pass walks every object of the generations it collects. Work that builds many objects
that all stay (imports, a bundle's load) sets off passes that find nothing, each walking
more than the last; ``pdp serve`` pauses it for such work and collects once, as it
freezes what the work built (bench/RESULTS.md, "Issue 16, round 11: start"):

- its imports (~900 modules, ~100,000 objects): about 230 passes, ~60 ms of CPU of the
  ~0.85 s of imports (:mod:`pdp.cli.serve`, :mod:`pdp.cli.lazy_group`);
- the first load (``pdp.engine.store.BundleStore.load_initial``), until the bundle is frozen.

Ref: https://docs.python.org/3/library/gc.html#gc.disable
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Run the block with automatic collection off, then restore it as it was (on, unless
    a caller had turned it off: nested pauses end with the outermost). Garbage made
    meanwhile waits for the next collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = ["paused"]
