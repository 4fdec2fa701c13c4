"""Replay a logged decision: run ``decide()`` again on the inputs its record kept.

A decision record holds everything ``decide()`` took (the way OPA's decision
log keeps ``input`` plus ``nd_builtin_cache``): the verified identity's facts,
the request, the live-context snapshot and the decision's clock (``now``),
and the bundle version, which :mod:`pdp.audit.auditing.archive` keeps by SHA-256. So a
record can be re-evaluated offline:

- under the **recorded** bundle it must give the same decision with the same
  determining policies (``reproduced``): evidence that the log tells the truth
  about why access was given or refused;
- under the **current** bundle it tells whether today's policies would decide
  otherwise (``would_change``): the question an auditor asks after a change.

Task grants and asserted subjects (AuthZEN) are replayed from what the
record lists (``grants``, ``asserted_subject``).

What cannot be replayed: a request whose credential was refused (the
credential itself is never logged, only its hash, so there is no identity to
decide for) and admin events. A record with ``redacted`` pointers is replayed
without the erased values and may therefore not reproduce; the result says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from context.model import LiveSnapshot, ValueSource
from pdp.audit.auditing.archive import ArchiveError, BundleArchive
from pdp.decision.cedar_request import asserted_principal, credential_facts
from pdp.decision.inputs import DecideInputs
from pdp.decision.model import AssertedSubject, Decision, ResourceRef
from pdp.engine.bundle import Bundle
from pdp.engine.evaluate import EntityInput
from pdp.engine.grants import Grant
from pdp.identity.errors import BadSpiffeId
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import parse_spiffe_id


class NotReplayable(ValueError):
    """The record does not hold what ``decide()`` would need (the message says what)."""


@dataclass(frozen=True, slots=True)
class ReplayInputs(DecideInputs):
    """``decide()``'s arguments, rebuilt from a record (``decision_id`` is the record's)."""

    # JSON pointers erased from the record before it was written: their values are gone.
    redacted: tuple[str, ...] = ()


def replay_inputs(record: Mapping[str, Any]) -> ReplayInputs:
    """Rebuild ``decide()``'s inputs from a decision record; :class:`NotReplayable` if it
    can't be."""
    if record.get("kind", "decision") != "decision":
        raise NotReplayable(f"record is a {record.get('kind')} event, not a decision")
    credential = record.get("credential")
    principal = record.get("principal")
    asserted = record.get("asserted_subject") if record.get("asserted") else None
    if asserted is None and (principal is None or not isinstance(credential, Mapping)
                             or not credential.get("kind")):
        codes = ", ".join(record.get("reason_codes") or []) or "no identity"
        raise NotReplayable(f"the credential was refused ({codes}); credentials are never "
                            "logged, so there is no verified identity to decide for")
    request = record.get("request")
    live = record.get("live")
    if not isinstance(request, Mapping) or not isinstance(live, Mapping):
        raise NotReplayable("the record lacks the request or the live-context snapshot")
    try:
        now = _time(record["timestamp"])
        resource = request["resource"]
        cedar_principal = None
        if isinstance(asserted, Mapping):
            identity, cedar_principal = _asserted(asserted)
        elif isinstance(credential, Mapping):
            identity = _identity(str(principal), credential, record.get("principal_entity"))
        else:
            raise NotReplayable("the record's asserted subject is malformed")
        return ReplayInputs(
            identity=identity, principal=cedar_principal, grants=_grants(record),
            action=str(request["action"]),
            resource=ResourceRef(
                type=str(resource["type"]), id=str(resource["id"]), attrs=resource.get("attrs"),
                parents=tuple((str(p[0]), str(p[1])) for p in resource.get("parents") or ())),
            context=dict(request.get("context") or {}),
            live=_live(live, now),
            now=now,
            decision_id=str(record["decision_id"]),
            redacted=tuple(record.get("redacted") or ()))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise NotReplayable(f"the record is incomplete: {type(e).__name__}: {e}") from e


def replay_decision(inputs: ReplayInputs, bundle: Bundle | None) -> Decision:
    """``decide()`` on the rebuilt inputs under ``bundle`` (the decision keeps the record's id)."""
    return inputs.decide(bundle)


def summary(outcome: Decision | Mapping[str, Any]) -> dict[str, Any]:
    """What replays compare: decision, determining policies, reason codes (+ explanation)."""
    if isinstance(outcome, Decision):
        return {"decision": outcome.decision,
                "policies": sorted(r.policy for r in outcome.reasons),
                "reason_codes": [str(c) for c in outcome.reason_codes],
                "explanation": outcome.explanation,
                "policy_version": outcome.policy_version}
    return {"decision": outcome.get("decision"),
            "policies": sorted(r["policy"] for r in outcome.get("reasons") or []
                               if isinstance(r, Mapping) and "policy" in r),
            "reason_codes": list(outcome.get("reason_codes") or []),
            "explanation": outcome.get("explanation"),
            "policy_version": outcome.get("policy_version")}


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """How two summaries differ in decision, determining policies or reason codes."""
    out = []
    for key in ("decision", "policies", "reason_codes"):
        if before.get(key) != after.get(key):
            out.append(f"{key}: {before.get(key)!r} -> {after.get(key)!r}")
    return out


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """The outcome of replaying one record under its recorded and the current bundle.

    ``reproduced`` is None when the record could not be replayed under its
    recorded bundle (not replayable, or that version is not in the archive);
    ``would_change`` is None when there is no current bundle to compare with.
    """

    decision_id: str
    replayable: bool
    reproduced: bool | None
    would_change: bool | None
    recorded: dict[str, Any]
    replayed: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    differences: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    redacted: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "replayable": self.replayable,
                "reproduced": self.reproduced, "would_change": self.would_change,
                "recorded": self.recorded, "replayed": self.replayed, "current": self.current,
                "differences": list(self.differences), "changes": list(self.changes),
                "redacted": list(self.redacted), "notes": list(self.notes)}


def replay_record(record: Mapping[str, Any], *, archive: BundleArchive | None,
                  current: Bundle | None) -> ReplayReport:
    """Replay ``record`` under its recorded bundle (from ``archive``, or ``current`` when it
    is that very version) and under ``current``; never raises for a bad or old record."""
    recorded = summary(record)
    decision_id = str(record.get("decision_id"))
    try:
        inputs = replay_inputs(record)
    except NotReplayable as e:
        return ReplayReport(decision_id=decision_id, replayable=False, reproduced=None,
                            would_change=None, recorded=recorded, notes=(str(e),))
    notes: list[str] = []
    if inputs.redacted:
        notes.append("the request was redacted before it was logged ("
                     + ", ".join(inputs.redacted) + "); the replay runs without the erased "
                     "values, so it may not reproduce the decision")
    notes += _credential_context_notes(record, inputs)

    replayed: dict[str, Any] | None = None
    diffs: list[str] = []
    reproduced: bool | None = None
    version = record.get("policy_version")
    sha = version.get("sha256") if isinstance(version, Mapping) else None
    try:
        bundle = _recorded_bundle(sha, archive, current)
    except ArchiveError as e:
        notes.append(f"cannot replay under the recorded bundle: {e}")
    else:
        replayed = summary(replay_decision(inputs, bundle))
        diffs = differences(recorded, replayed)
        reproduced = not diffs

    now_summary: dict[str, Any] | None = None
    changes: list[str] = []
    would_change: bool | None = None
    if current is not None:
        now_summary = summary(replay_decision(inputs, current))
        changes = differences(recorded, now_summary)
        would_change = bool(changes)
    else:
        notes.append("no current bundle is loaded to compare with")
    return ReplayReport(decision_id=decision_id, replayable=True, reproduced=reproduced,
                        would_change=would_change, recorded=recorded, replayed=replayed,
                        current=now_summary, differences=tuple(diffs), changes=tuple(changes),
                        redacted=inputs.redacted, notes=tuple(notes))


def _recorded_bundle(sha: str | None, archive: BundleArchive | None,
                     current: Bundle | None) -> Bundle | None:
    if sha is None:
        return None  # decided with no bundle loaded (engine.no_bundle): replay the same
    if current is not None and current.version.sha256 == sha:
        return current
    if archive is None:
        raise ArchiveError("no bundle archive is configured")
    return archive.bundle_for(sha, current)


def _credential_context_notes(record: Mapping[str, Any], inputs: ReplayInputs) -> list[str]:
    used = record.get("credential_context")
    if not isinstance(used, Mapping):
        return []
    again = credential_facts(inputs.identity, inputs.now)
    if dict(used) != again:
        return [f"context.credential recomputed from the credential's facts differs from the "
                f"one recorded: {dict(used)} != {again}"]
    return []


def _identity(principal: str, cred: Mapping[str, Any],
              entity: Any) -> VerifiedIdentity:
    trust_domain = cred.get("trust_domain") or ""
    path = cred.get("path")
    if path is None and isinstance(entity, Mapping):
        path = (entity.get("attrs") or {}).get("path")
    if path is None:
        try:
            path = parse_spiffe_id(principal).path
        except BadSpiffeId:
            path = ""
    actor = cred.get("actor")
    actor_chain = tuple(cred.get("actor_chain") or ())
    depth = cred.get("chain_depth")
    if depth is None:  # records from before chain_depth was logged
        depth = (1 + len(actor_chain)) if actor else 0
    return VerifiedIdentity(
        principal_id=principal, kind=cred["kind"], issuer=str(cred.get("issuer") or ""),
        trust_domain=trust_domain, path=str(path),
        scopes=frozenset(cred.get("scopes") or ()), groups=frozenset(cred.get("groups") or ()),
        issued_at=_opt_time(cred.get("issued_at")), not_before=_opt_time(cred.get("not_before")),
        expires_at=_opt_time(cred.get("expires_at")), jti=cred.get("jti"),
        serial=cred.get("serial"), credential_sha256=str(cred.get("sha256") or ""),
        actor=actor, chain_depth=int(depth), actor_chain=actor_chain,
        flags=tuple(cred.get("flags") or ()))


def _asserted(subject: Mapping[str, Any]) -> tuple[VerifiedIdentity, EntityInput]:
    """Identity and principal of a subject a trusted PEP asserted, rebuilt as ``decide`` did."""
    return asserted_principal(AssertedSubject(
        type=str(subject["type"]), id=str(subject["id"]),
        asserted_by=str(subject.get("asserted_by")), properties=subject.get("properties")))


def _grants(record: Mapping[str, Any]) -> tuple[Grant, ...]:
    raw = record.get("grants")
    if not raw:
        return ()
    return tuple(Grant.from_dict(g) for g in raw)


def _live(live: Mapping[str, Any], now: datetime) -> LiveSnapshot:
    from_dict = getattr(LiveSnapshot, "from_dict", None)
    if from_dict is not None:  # the snapshot's own inverse of as_dict (context.model)
        snapshot: LiveSnapshot = from_dict({**live, "now": live.get("now") or now.isoformat()})
        return snapshot
    sources = {str(k): ValueSource(str(v.get("source")), _opt_time(v.get("set_at")))
               for k, v in (live.get("sources") or {}).items() if isinstance(v, Mapping)}
    return LiveSnapshot(
        now=_time(live["now"]) if live.get("now") else now,
        incident=bool(live["incident"]), risk_level=int(live["risk_level"]),
        business_hours=bool(live["business_hours"]), version=str(live.get("version", "static")),
        sources=sources, degraded=tuple(live.get("degraded") or ()))


def _time(value: Any) -> datetime:
    at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return at


def _opt_time(value: Any) -> datetime | None:
    return _time(value) if value else None


__all__ = ["NotReplayable", "ReplayInputs", "ReplayReport", "differences", "replay_decision",
           "replay_inputs", "replay_record", "summary"]
