"""Live-context providers: what is true *right now* (time, incident, risk, behaviour).

Every decision takes one immutable ``LiveSnapshot`` from a provider and uses it
to the end, so a decision never sees half of an update. The snapshot goes into
Cedar as ``context.live`` (type ``Pdp::Live``) and into the decision record,
which is what makes a decision replayable (OPA's ``nd_builtin_cache``).

::

    context/
      model.py          LiveSnapshot (what a decision sees), ValueSource
      state.py          ContextState: incidents (scoped), risk entries, versioned
      store.py          ContextStore protocol, InMemoryStore
      redis_backend.py  RedisContextStore, RedisRevocationStore (shared by replicas)
      live.py           LiveContext: the provider (freshness, degraded defaults, admin ops)
      memory.py         InMemoryContext: LiveContext on an InMemoryStore
      behaviour.py      BehaviourMonitor: adaptive risk from the PDP's own decisions
      calendar.py       BusinessCalendar;  clock.py: Clock, SystemClock, FixedClock
      scope.py          a resource's tags;  factory.py: wiring from settings
      revocations.py    RevocationStore protocol (identity)
      durable.py        DurableState: the replica's copy of the admin state, kept current
      admin_store.py    what it needs of the durable store (pdp.audit.admin_state meets it)

See docs/context.md.
"""

from context.behaviour import BehaviourMonitor, BehaviourRules, RiskRaise
from context.calendar import BusinessCalendar
from context.clock import Clock, FixedClock, SystemClock
from context.live import ConfiguredValues, DegradedDefaults, Freshness, LiveContext
from context.memory import InMemoryContext
from context.model import LiveSnapshot, ValueSource
from context.provider import LiveContextProvider
from context.state import ContextChange, ContextState, Incident, RiskEntry, Scope, ScopeKind
from context.store import ContextStore, ContextUnavailable, InMemoryStore, StoreView

__all__ = [
    "BehaviourMonitor", "BehaviourRules", "BusinessCalendar", "Clock", "ConfiguredValues",
    "ContextChange", "ContextState", "ContextStore", "ContextUnavailable", "DegradedDefaults",
    "FixedClock", "Freshness", "InMemoryContext", "InMemoryStore", "Incident", "LiveContext",
    "LiveContextProvider", "LiveSnapshot", "RiskEntry", "RiskRaise", "Scope", "ScopeKind",
    "StoreView", "SystemClock", "ValueSource",
]
