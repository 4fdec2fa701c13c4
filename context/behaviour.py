"""Behaviour signals the PDP computes from its own decisions (adaptive risk).

After every decision the ``BehaviourMonitor`` updates, for that principal,
sliding one-second buckets over ``window_s`` and a long-term baseline, and
checks the configured thresholds:

==================  ===========================================================
signal              fires when
==================  ===========================================================
``deny_burst``      ``deny_burst`` denies in the window, counting only reason
                    codes in ``deny_reasons`` (``policy.no_permit`` by default:
                    a principal asking for what it was never granted). Denies
                    by a guard (``policy.forbid``) are not counted, so an
                    incident lockdown or a risk raise cannot feed on itself.
``request_rate``    at least ``rate_min_requests`` in the window and the rate
                    is ``rate_factor`` times the principal's own baseline (an
                    exponentially weighted rate over ``baseline_s``, used only
                    after ``baseline_warmup_s`` of history)
``new_source``      a source address (the PEP's context key, e.g.
                    ``source_address``) not seen before for this principal,
                    once it has ``new_source_min_history`` decisions
``new_pep``         the same for the PEP that asked
``revoked_credential`` / ``expired_credential``
                    uses of a revoked / expired credential of this principal
==================  ===========================================================

Crossing a threshold raises the principal's *automatic* risk to the signal's
level if it is not already there, naming the decisions that fired it (the
newest :data:`EVIDENCE_IDS` denies of a burst, the decision that crossed a rate,
came from a new source or PEP, or used a bad credential); the raise steps down one level every
``decay_s`` seconds. Each raise (and each decay step) is recorded as an
administrative event ``context.risk.auto`` with its evidence, e.g. ``risk
raised to high: 40 denies in 60 s``, and every decision that sees the raised
level repeats that sentence in its explanation.

For a refused credential the principal is not verified. Only a revoked or
expired credential whose signature (or certificate path) the verifier checked
first is attributed, to the principal that check proved; the name a refused
credential merely claims is never read (anyone can forge a certificate naming
another workload, expired or not).
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from context.state import RiskEntry, risk_name

log = logging.getLogger("pdp.context.behaviour")

REVOKED = "identity.revoked"
EXPIRED = "identity.expired"


@dataclass(frozen=True, slots=True)
class BehaviourRules:
    """Thresholds, windows, levels and decay. Levels: 0 low ... 3 critical."""

    enabled: bool = True
    window_s: float = 60.0
    deny_burst: int = 20
    deny_burst_level: int = 2
    deny_reasons: frozenset[str] = frozenset({"policy.no_permit"})
    rate_factor: float = 5.0
    rate_min_requests: int = 120
    rate_level: int = 1
    baseline_s: float = 3600.0
    baseline_warmup_s: float = 600.0
    new_source_level: int = 1
    new_pep_level: int = 1
    new_source_min_history: int = 50
    source_keys: tuple[str, ...] = ("source_address", "source_ip")
    revoked_uses: int = 1
    revoked_level: int = 3
    expired_uses: int = 5
    expired_level: int = 1
    decay_s: float = 300.0
    max_principals: int = 10000


@dataclass(frozen=True, slots=True)
class Observation:
    """One decision, as the monitor sees it."""

    principal_id: str
    at: datetime
    counted_deny: bool = False
    source_address: str | None = None
    pep: str | None = None
    credential_problem: str | None = None   # REVOKED | EXPIRED
    decision_id: str | None = None


@dataclass(frozen=True, slots=True)
class RiskRaise:
    """An automatic risk change for one principal, with the evidence behind it."""

    principal_id: str
    level: int
    previous_level: int
    signals: tuple[str, ...]
    evidence: tuple[str, ...]
    at: datetime
    decay_s: float
    decisions: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        return f"risk raised to {risk_name(self.level)}: {'; '.join(self.evidence)}"

    def entry(self) -> RiskEntry:
        return RiskEntry(level=self.level, reason=self.summary, set_at=self.at,
                         set_by="pdp:behaviour", decay_s=self.decay_s, automatic=True,
                         evidence=self.evidence, signals=self.signals,
                         decisions=self.decisions)

    def detail(self) -> dict[str, Any]:
        """The administrative event's detail: what changed and the evidence."""
        steps = [{"level": self.level - k,
                  "at": _iso(self.at + timedelta(seconds=k * self.decay_s))}
                 for k in range(1, self.level + 1)]
        return {"change": "raised", "principal": self.principal_id, "level": self.level,
                "level_name": risk_name(self.level), "previous_level": self.previous_level,
                "summary": self.summary, "evidence": list(self.evidence),
                "signals": list(self.signals), "decisions": list(self.decisions),
                "decay_s": self.decay_s, "decays": steps}


@dataclass(slots=True)
class _Track:
    first_seen: float
    buckets: deque[list[int]] = field(default_factory=deque)   # [second, total, denies]
    total: int = 0
    denies: int = 0
    bad: deque[tuple[float, str]] = field(default_factory=deque)
    deny_ids: deque[tuple[float, str]] = field(default_factory=deque)  # counted, newest last
    ewma: float = 0.0
    ewma_at: float = 0.0
    count: int = 0
    sources: OrderedDict[str, None] = field(default_factory=OrderedDict)
    peps: OrderedDict[str, None] = field(default_factory=OrderedDict)


_SEEN_MAX = 64
EVIDENCE_IDS = 5
"""How many decision ids a raise names as its evidence (a burst's newest denies)."""


class BehaviourMonitor:
    """Per-principal sliding windows over the decision stream; raises risk on thresholds.

    ``current_level(principal, at)`` tells the automatic level in force (a raise
    happens only above it); ``on_raise`` applies a raise (it must not block).
    """

    def __init__(self, rules: BehaviourRules, *,
                 current_level: Callable[[str, datetime], int],
                 on_raise: Callable[[RiskRaise], None]) -> None:
        self.rules = rules
        self._current_level = current_level
        self._on_raise = on_raise
        self._lock = threading.Lock()
        self._tracks: OrderedDict[str, _Track] = OrderedDict()

    def observe(self, obs: Observation) -> RiskRaise | None:
        """Account for one decision; return the raise it caused, if any."""
        if not self.rules.enabled:
            return None
        with self._lock:
            fired = self._update(obs)
            if not fired:
                return None
            level = max(lvl for _, lvl, _ in fired)
            previous = self._current_level(obs.principal_id, obs.at)
            if level <= previous:
                return None
            top = [f for f in fired if f[1] > previous]
            raise_ = RiskRaise(principal_id=obs.principal_id, level=level,
                               previous_level=previous,
                               signals=tuple(name for name, _, _ in top),
                               evidence=tuple(ev for _, _, ev in top), at=obs.at,
                               decay_s=self.rules.decay_s,
                               decisions=self._evidence_ids(obs, [n for n, _, _ in top]))
            self._on_raise(raise_)
            return raise_

    def _evidence_ids(self, obs: Observation, signals: list[str]) -> tuple[str, ...]:
        """The decisions behind ``signals``: a burst's newest counted denies, else this one."""
        ids: list[str] = []
        if "deny_burst" in signals:
            track = self._tracks.get(obs.principal_id)
            if track is not None:
                ids.extend(i for _, i in reversed(track.deny_ids))
        if any(s != "deny_burst" for s in signals) and obs.decision_id is not None:
            ids.insert(0, obs.decision_id)
        return tuple(dict.fromkeys(ids))[:EVIDENCE_IDS]

    def _track(self, principal: str, t: float) -> _Track:
        track = self._tracks.get(principal)
        if track is None:
            track = self._tracks[principal] = _Track(first_seen=t, ewma_at=t)
            while len(self._tracks) > self.rules.max_principals:
                self._tracks.popitem(last=False)
        else:
            self._tracks.move_to_end(principal)
        return track

    def _update(self, obs: Observation) -> list[tuple[str, int, str]]:
        rules, t = self.rules, obs.at.timestamp()
        track = self._track(obs.principal_id, t)
        window = rules.window_s
        fired: list[tuple[str, int, str]] = []

        # Baseline first (without this request), then the window.
        history = t - track.first_seen
        baseline = _baseline_rate(track, t, rules.baseline_s)
        track.ewma = track.ewma * math.exp(-max(0.0, t - track.ewma_at) / rules.baseline_s) + 1
        track.ewma_at = max(track.ewma_at, t)
        second = int(t)
        if track.buckets and track.buckets[-1][0] >= second:
            bucket = track.buckets[-1]
        else:
            bucket = [second, 0, 0]
            track.buckets.append(bucket)
        bucket[1] += 1
        bucket[2] += int(obs.counted_deny)
        track.total += 1
        track.denies += int(obs.counted_deny)
        while track.buckets and track.buckets[0][0] <= second - window:
            _, total, denies = track.buckets.popleft()
            track.total -= total
            track.denies -= denies
        if obs.counted_deny and obs.decision_id is not None:
            track.deny_ids.append((t, obs.decision_id))
            while len(track.deny_ids) > EVIDENCE_IDS:
                track.deny_ids.popleft()
        while track.deny_ids and track.deny_ids[0][0] <= t - window:
            track.deny_ids.popleft()

        if obs.counted_deny and track.denies >= rules.deny_burst:
            fired.append(("deny_burst", rules.deny_burst_level,
                          f"{track.denies} denies in {window:g} s"))
        if (track.total >= rules.rate_min_requests and history >= rules.baseline_warmup_s
                and baseline > 0 and track.total / window > rules.rate_factor * baseline):
            fired.append(("request_rate", rules.rate_level,
                          f"{track.total} requests in {window:g} s, "
                          f"{track.total / window / baseline:.0f}x its baseline of "
                          f"{baseline * window:.1f}"))
        experienced = track.count >= rules.new_source_min_history
        if obs.source_address is not None:
            if experienced and obs.source_address not in track.sources:
                fired.append(("new_source", rules.new_source_level,
                              f"first-seen source address {obs.source_address}"))
            _remember(track.sources, obs.source_address)
        if obs.pep is not None:
            if experienced and obs.pep not in track.peps:
                fired.append(("new_pep", rules.new_pep_level, f"first-seen PEP {obs.pep}"))
            _remember(track.peps, obs.pep)
        if obs.credential_problem is not None:
            track.bad.append((t, obs.credential_problem))
        while track.bad and track.bad[0][0] <= t - window:
            track.bad.popleft()
        if obs.credential_problem == REVOKED:
            uses = sum(1 for _, kind in track.bad if kind == REVOKED)
            if uses >= rules.revoked_uses:
                fired.append(("revoked_credential", rules.revoked_level,
                              f"{uses} use{'s' if uses > 1 else ''} of a revoked credential "
                              f"in {window:g} s"))
        elif obs.credential_problem == EXPIRED:
            uses = sum(1 for _, kind in track.bad if kind == EXPIRED)
            if uses >= rules.expired_uses:
                fired.append(("expired_credential", rules.expired_level,
                              f"{uses} uses of an expired credential in {window:g} s"))
        track.count += 1
        return [f for f in fired if f[1] > 0]


def _baseline_rate(track: _Track, t: float, tau: float) -> float:
    """Requests per second over the principal's history, exponentially weighted."""
    history = t - track.first_seen
    if history <= 0 or track.ewma == 0:
        return 0.0
    decayed = track.ewma * math.exp(-max(0.0, t - track.ewma_at) / tau)
    return decayed / (tau * (1 - math.exp(-history / tau)))


def _remember(seen: OrderedDict[str, None], key: str) -> None:
    seen[key] = None
    seen.move_to_end(key)
    while len(seen) > _SEEN_MAX:
        seen.popitem(last=False)


# -- from a decision to an observation ---------------------------------------------

def observation_of(decision: Any, request: Any, rules: BehaviourRules) -> Observation | None:
    """What the monitor needs from a ``Decision`` and its ``AuthorizeInput``.

    Only a principal proven by a verified credential is observed: the decision's
    identity, or, for a credential refused as revoked or expired, the principal its
    trusted signature or certificate path proved (``decision.proven_principal``).
    Any other refusal (a forged signature, an unknown key, another trust domain, a
    self-signed certificate) names nobody and returns None: what it claims to be is
    the forger's choice. Such refusals stay attributed to the calling PEP and the
    source address in the decision log (``pep``, ``request.context``), which the
    identity inventory counts (``pdp.audit.auditing.inventory``).
    """
    identity = decision.identity
    codes = [str(c) for c in decision.reason_codes]
    problem = next((c for c in codes if c in (REVOKED, EXPIRED)), None)
    if identity is not None:
        principal = identity.principal_id
    elif problem is not None:
        principal = getattr(decision, "proven_principal", None)
    else:
        return None
    if not principal:
        return None
    context: Mapping[str, Any] = request.context or {}
    return Observation(
        principal_id=principal, at=decision.timestamp,
        counted_deny=decision.decision == "deny" and any(c in rules.deny_reasons for c in codes),
        source_address=source_address(context, rules.source_keys), pep=request.pep,
        credential_problem=problem, decision_id=getattr(decision, "decision_id", None))


def source_address(context: Mapping[str, Any], keys: tuple[str, ...] | list[str]) -> str | None:
    """The workload's source address in the PEP's context: the first of ``keys`` set."""
    return next((str(context[k]) for k in keys
                 if isinstance(context.get(k), str) and context[k]), None)


# -- recording raises and decays off the request path --------------------------------

class RaiseRecorder:
    """Records automatic risk changes as administrative events, on its own thread.

    ``record(event, detail)`` is the decision log's synchronous append (it must
    not run on the event loop); ``level_now(principal, at)`` and ``now()`` let it
    record each decay step when it is due.
    """

    def __init__(self, record: Callable[[str, dict[str, Any]], object], *,
                 now: Callable[[], datetime],
                 current_entry: Callable[[str], RiskEntry | None]) -> None:
        self._record = record
        self._now = now
        self._current_entry = current_entry
        self._queue: queue.Queue[RiskRaise | None] = queue.Queue()
        self._decays: list[tuple[datetime, int, str, int, datetime]] = []
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name="pdp-behaviour-events",
                                        daemon=True)
        self._thread.start()

    def submit(self, raise_: RiskRaise) -> None:
        self._queue.put(raise_)

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item: RiskRaise | None
            try:
                item = self._queue.get(timeout=self._wait())
            except queue.Empty:  # nothing new: only the decays that came due
                self._due_decays()
                continue
            if item is None:
                return
            if isinstance(item, RiskRaise):
                self._write("context.risk.auto", item.detail())
                for k in range(1, item.level + 1):
                    self._seq += 1
                    heapq.heappush(self._decays, (
                        item.at + timedelta(seconds=k * item.decay_s), self._seq,
                        item.principal_id, item.level - k, item.at))
            self._due_decays()

    def _wait(self) -> float:
        if not self._decays:
            return 1.0
        delta = (self._decays[0][0] - self._now()).total_seconds()
        return min(1.0, max(0.05, delta))

    def _due_decays(self) -> None:
        now = self._now()
        while self._decays and self._decays[0][0] <= now:
            at, _, principal, level, raised_at = heapq.heappop(self._decays)
            entry = self._current_entry(principal)
            if entry is None or not entry.automatic or entry.set_at != raised_at:
                continue  # replaced by a newer raise or by an administrator
            self._write("context.risk.auto", {
                "change": "decayed", "principal": principal, "level": level,
                "level_name": risk_name(level), "previous_level": level + 1,
                "summary": f"risk decayed to {risk_name(level)} "
                           f"({entry.decay_s:g} s per level since: {entry.reason})",
                "at": _iso(at)})

    def _write(self, event: str, detail: dict[str, Any]) -> None:
        try:
            self._record(event, detail)
        except Exception as e:  # noqa: BLE001 - never kill the recorder thread
            log.warning("could not record %s for %s: %s", event, detail.get("principal"), e)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


__all__ = ["EVIDENCE_IDS", "BehaviourMonitor", "BehaviourRules", "Observation", "RaiseRecorder",
           "RiskRaise", "observation_of", "source_address"]
