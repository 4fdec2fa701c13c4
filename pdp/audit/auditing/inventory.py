"""The identity inventory: every workload the decision log has seen, and which look wrong.

Machine identities accumulate quietly: a service is retired but its SPIFFE
registration stays; a team mints long-lived tokens "just for now". The
decision log already holds the facts, so the inventory is computed from it:
for each principal, when it was first and last seen, by which issuers and
credential kinds, the longest credential lifetime (``exp - iat``) it
presented, how many requests it made and how many were denied. Two flags:

- ``stale``: not seen for ``stale_days`` (default 90) — a candidate for
  removal from the registration entries and from ``entities.json``;
- ``long_lived``: it presented a credential living longer than its issuer's
  or trust domain's configured maximum (possible when ``lifetime_policy =
  "flag"``), or longer than ``long_lived_s`` (default 3600 s).

Only decisions with a verified identity count (a refused credential names no
principal: what a forged credential claims to be is the forger's choice);
admin events are not requests. Refused credentials are counted instead against
who sent them, the calling PEP and the workload's source address
(:class:`RefusalTally`, the report's ``refused_credentials``). Computed in one
pass over the log (``iter_all``): simple and correct first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from context.behaviour import source_address
from pdp.audit.records import normalize_ts

DEFAULT_STALE_DAYS = 90
DEFAULT_LONG_LIVED_S = 3600


@dataclass(slots=True)
class IdentityEntry:
    """What the log knows about one principal."""

    principal: str
    first_seen: str
    last_seen: str
    issuers: set[str] = field(default_factory=set)
    credential_kinds: set[str] = field(default_factory=set)
    trust_domains: set[str] = field(default_factory=set)
    longest_lifetime_s: int | None = None
    requests: int = 0
    denies: int = 0
    stale: bool = False
    long_lived: bool = False
    long_lived_because: str | None = None

    @property
    def flags(self) -> list[str]:
        return [name for name, on in (("stale", self.stale), ("long_lived", self.long_lived))
                if on]

    def as_dict(self) -> dict[str, Any]:
        return {"principal": self.principal, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "issuers": sorted(self.issuers),
                "credential_kinds": sorted(self.credential_kinds),
                "trust_domains": sorted(t for t in self.trust_domains if t),
                "longest_lifetime_s": self.longest_lifetime_s, "requests": self.requests,
                "denies": self.denies, "flags": self.flags,
                "long_lived_because": self.long_lived_because}


@dataclass(slots=True)
class RefusalTally:
    """Refused credentials by who sent them: the calling PEP and the source address
    (the first of ``source_keys`` in the PEP's context), never by the name they claim."""

    source_keys: tuple[str, ...] = ("source_address", "source_ip")
    rows: dict[tuple[str | None, str | None], dict[str, Any]] = field(default_factory=dict)

    def add(self, record: Mapping[str, Any], ts: str) -> None:
        """Count ``record`` if it is a decision whose credential was refused."""
        codes = [str(c) for c in record.get("reason_codes") or ()]
        if not any(c.startswith("identity.") for c in codes):
            return
        request = record.get("request") or {}
        context = request.get("context") if isinstance(request, Mapping) else None
        context = context if isinstance(context, Mapping) else {}
        source = source_address(context, self.source_keys)
        pep = record.get("pep") if isinstance(record.get("pep"), str) else None
        row = self.rows.get((pep, source))
        if row is None:
            row = self.rows[(pep, source)] = {"pep": pep, "source": source, "refusals": 0,
                                              "reason_codes": {}, "first_seen": ts,
                                              "last_seen": ts}
        row["refusals"] += 1
        row["first_seen"], row["last_seen"] = min(row["first_seen"], ts), max(row["last_seen"], ts)
        for code in codes:
            if code.startswith("identity."):
                row["reason_codes"][code] = row["reason_codes"].get(code, 0) + 1

    def as_list(self) -> list[dict[str, Any]]:
        """Most refusals first."""
        return sorted(self.rows.values(), key=lambda r: (-r["refusals"], str(r["pep"]),
                                                         str(r["source"])))


def identity_inventory(records: Iterable[Mapping[str, Any]], *, now: datetime,
                       stale_days: int = DEFAULT_STALE_DAYS,
                       long_lived_s: int = DEFAULT_LONG_LIVED_S,
                       max_lifetimes: Mapping[str, int] | None = None,
                       refusals: RefusalTally | None = None) -> list[IdentityEntry]:
    """The inventory of ``records`` (in any order), sorted by principal.

    ``max_lifetimes`` maps an issuer (``iss``, or ``spiffe://<trust domain>``)
    or a trust domain name to its configured maximum lifetime in seconds
    (see :func:`max_lifetimes_from_settings`). ``refusals``, if given, counts the
    refused credentials in the same pass.
    """
    limits = dict(max_lifetimes or {})
    entries: dict[str, IdentityEntry] = {}
    over_limit: dict[str, str] = {}
    for record in records:
        principal = record.get("principal")
        if record.get("kind", "decision") != "decision":
            continue
        if not isinstance(principal, str):
            if refusals is not None:
                try:
                    refusals.add(record, normalize_ts(record.get("timestamp")))
                except ValueError:
                    pass
            continue
        try:
            ts = normalize_ts(record.get("timestamp"))
        except ValueError:
            continue
        entry = entries.get(principal)
        if entry is None:
            entry = entries[principal] = IdentityEntry(principal, first_seen=ts, last_seen=ts)
        entry.first_seen = min(entry.first_seen, ts)
        entry.last_seen = max(entry.last_seen, ts)
        entry.requests += 1
        if record.get("decision") == "deny":
            entry.denies += 1
        cred = record.get("credential") or {}
        if not isinstance(cred, Mapping):
            continue
        issuer, trust_domain = cred.get("issuer"), cred.get("trust_domain") or ""
        if issuer:
            entry.issuers.add(str(issuer))
        if cred.get("kind"):
            entry.credential_kinds.add(str(cred["kind"]))
        entry.trust_domains.add(str(trust_domain))
        lifetime = credential_lifetime_s(cred)
        if lifetime is None:
            continue
        if entry.longest_lifetime_s is None or lifetime > entry.longest_lifetime_s:
            entry.longest_lifetime_s = lifetime
        limit = limits.get(str(issuer)) if issuer else None
        if limit is None and trust_domain:
            limit = limits.get(str(trust_domain))
        if limit is not None and lifetime > limit and principal not in over_limit:
            over_limit[principal] = (f"a {lifetime} s credential from {issuer}, over its "
                                     f"configured maximum of {limit} s")
    stale_before = _iso(now - timedelta(days=stale_days))
    for principal, entry in entries.items():
        entry.stale = entry.last_seen < stale_before
        if principal in over_limit:
            entry.long_lived, entry.long_lived_because = True, over_limit[principal]
        elif entry.longest_lifetime_s is not None and entry.longest_lifetime_s > long_lived_s:
            entry.long_lived = True
            entry.long_lived_because = (f"a {entry.longest_lifetime_s} s credential, over "
                                        f"{long_lived_s} s")
    return [entries[p] for p in sorted(entries)]


def credential_lifetime_s(cred: Mapping[str, Any]) -> int | None:
    """``exp - iat`` (or ``exp - nbf``) of a logged credential, in whole seconds; None if
    unknown."""
    start = cred.get("issued_at") or cred.get("not_before")
    end = cred.get("expires_at")
    if not start or not end:
        return None
    try:
        return int((_parse(end) - _parse(start)).total_seconds())
    except (TypeError, ValueError):
        return None


def max_lifetimes_from_settings(settings: Any) -> dict[str, int]:
    """Configured maximum lifetimes by issuer and by trust domain (``pdp.config.Settings``)."""
    limits: dict[str, int] = {}
    for td in getattr(settings, "trust_domains", []):
        limits[td.name] = td.max_lifetime_s
        limits[f"spiffe://{td.name}"] = td.max_lifetime_s
    for issuer in getattr(settings, "issuers", []):
        limits[issuer.issuer] = issuer.max_lifetime_s
    return limits


def inventory_report(entries: list[IdentityEntry], *, now: datetime, stale_days: int,
                     long_lived_s: int, flagged_only: bool = False,
                     refusals: RefusalTally | None = None) -> dict[str, Any]:
    """The JSON body of ``GET /v1/identities`` and ``pdp audit identities --json``."""
    shown = [e for e in entries if e.flags] if flagged_only else entries
    return {"generated_at": _iso(now), "stale_days": stale_days, "long_lived_s": long_lived_s,
            "total": len(entries), "stale": sum(e.stale for e in entries),
            "long_lived": sum(e.long_lived for e in entries),
            "identities": [e.as_dict() for e in shown],
            "refused_credentials": refusals.as_list() if refusals is not None else []}


def _parse(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _iso(at: datetime) -> str:
    return normalize_ts(at)


__all__ = ["DEFAULT_LONG_LIVED_S", "DEFAULT_STALE_DAYS", "IdentityEntry", "RefusalTally",
           "credential_lifetime_s", "identity_inventory", "inventory_report",
           "max_lifetimes_from_settings"]
