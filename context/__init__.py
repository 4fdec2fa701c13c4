"""Live-context providers: what is true *right now* (time, incident, risk).

Every decision takes one immutable ``LiveSnapshot`` from a provider and uses it
to the end, so a decision never sees half of an update. The snapshot goes into
Cedar as ``context.live`` (type ``Pdp::Live``) and into the decision record,
which is what makes a decision replayable (OPA's ``nd_builtin_cache``).
"""

from context.calendar import BusinessCalendar
from context.clock import Clock, FixedClock, SystemClock
from context.memory import InMemoryContext
from context.model import LiveSnapshot, ValueSource
from context.provider import LiveContextProvider

__all__ = [
    "BusinessCalendar", "Clock", "FixedClock", "InMemoryContext", "LiveContextProvider",
    "LiveSnapshot", "SystemClock", "ValueSource",
]
