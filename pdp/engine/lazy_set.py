"""A bundle's whole policy set, built when something first asks for it.

A bundle of two policies or more decides every request on a slice of its policies
(:mod:`pdp.engine.slicing`), each slice built from the policies' nodes; the set of all
of them then serves only what a slice cannot, such as listing the templates' slots for
a new grant (:func:`pdp.engine.grants.check_grant`). Building it reads every node with
the GIL held: about a third of a second of CPU at 10,000 policies, spent at every start
for a set that most processes never use (bench/RESULTS.md, "hready"). So a start leaves
it to the first use, which builds it once from the same nodes, the same way
(``PolicySet.from_pst``), and keeps it.

What a start gives up: refusing a bundle whose whole set would not build. Cedar builds
it from the nodes its own ``to_pst`` gave for text it parsed and validated (``from_pst``
is documented as that call's inverse), under ids the loader checked unique, and every
slice a decision uses is built from the same nodes, where a failure denies the request
(``cedar failed``). A reload still builds it at once and refuses a set that does not.

Thread-safe: concurrent first uses build it once. A build that fails raises, as the
load's build would have, and is tried again on the next use. Not fork-safe while a
build is under way (its lock would be held in the child): ``pdp serve --workers N``
forks from a supervisor that decides nothing, so it never builds one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import cedarpy


class LazyPolicySet:
    """The result of ``build``, computed on the first :meth:`get`."""

    __slots__ = ("_build", "_built", "_lock")

    def __init__(self, build: Callable[[], cedarpy.PolicySet]) -> None:
        self._build: Callable[[], cedarpy.PolicySet] | None = build
        self._built: cedarpy.PolicySet | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, built: cedarpy.PolicySet) -> LazyPolicySet:
        """A set already built (by a load that needs it to decide)."""
        lazy = cls(lambda: built)
        lazy.get()
        return lazy

    @property
    def is_built(self) -> bool:
        return self._built is not None

    def get(self) -> cedarpy.PolicySet:
        """The set: built now if nobody asked before (raises ``ValueError`` as
        ``PolicySet.from_pst`` does)."""
        built = self._built
        if built is not None:
            return built
        with self._lock:
            if self._built is None:
                assert self._build is not None
                self._built = self._build()
                self._build = None  # what it held (the nodes) is the bundle's anyway
            return self._built
