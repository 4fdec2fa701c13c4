"""Imports without the cyclic garbage collector's passes.

``pdp serve`` imports about 900 modules (FastAPI, pydantic's models, the API's routes:
~100,000 objects that live as long as the process). Their allocations set off about
230 collections on the way, each walking what was imported so far, ~60 ms of CPU of the
~0.85 s of imports, on the critical path of every start; modules are not garbage, so they
found little. ``serve`` imports with the collector off and calls
:func:`pdp.api.app.freeze_imported_modules` before turning it back on: one collection,
~20 ms dearer than the one after collected imports (it meets the ~1,500 objects of
garbage and the containers those passes would have untracked), then the freeze.
About 40 ms less CPU in all (bench/RESULTS.md, "Issue 16, round 11: start").
Ref: https://docs.python.org/3/library/gc.html#gc.disable
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_collection() -> Iterator[None]:
    """Run the block with automatic collection off, then restore it as it was (on, unless
    a caller had turned it off). Garbage made meanwhile waits for the next collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = ["without_collection"]
