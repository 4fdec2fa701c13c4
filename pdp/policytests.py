"""Run a bundle's test suites (``tests/*.yaml``) through ``decide()``.

A suite is a YAML file::

    description: Pipelines read and write analytics datasets
    defaults:                      # optional; merged into every case
      now: "2026-11-23T10:00:00Z"
    cases:
      - description: the ETL pipeline reads an analytics dataset
        principal: spiffe://example.org/services/etl   # or a mapping, see below
        action: read
        resource: {type: App::Dataset, id: sales-daily}
        context: {purpose: report}                       # the PEP's context
        live: {incident: false, risk_level: 0}           # overrides; business_hours follows `now`
        credential: {age_s: 30, lifetime_s: 300}         # ages of the credential at `now`
        expect:
          decision: allow
          policies: [dataset.pipelines.read-write]       # the determining policies, exactly
          reason_code: policy.permit                     # optional

``principal`` may be a mapping: ``{id, kind, issuer, scopes, groups}``. The
clock is frozen at ``now`` and live values default to the configured ones, so
a case decides the same way on every machine and every day.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from context.calendar import BusinessCalendar
from context.memory import InMemoryContext
from pdp.decision.decide import decide
from pdp.decision.model import Decision, ResourceRef
from pdp.engine.bundle import Bundle
from pdp.identity.errors import BadSpiffeId
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import parse_spiffe_id

DEFAULT_NOW = "2026-01-05T10:00:00Z"  # a Monday morning, inside default business hours


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and case."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    suite: str
    description: str
    passed: bool
    problems: tuple[str, ...] = ()
    decision: Decision | None = None


@dataclass(frozen=True, slots=True)
class SuiteReport:
    results: tuple[CaseResult, ...] = field(default=())

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed


def run_suites(bundle: Bundle, *, calendar: BusinessCalendar | None = None) -> SuiteReport:
    """Run every ``tests/*.yaml`` of ``bundle``; a malformed suite raises ``SuiteError``."""
    calendar = calendar or BusinessCalendar()
    results: list[CaseResult] = []
    for name, suite in _suites(bundle):
        defaults = suite.get("defaults") or {}
        for i, raw in enumerate(suite["cases"]):
            if not isinstance(raw, Mapping):
                raise SuiteError(f"{name}: case {i + 1} is not a mapping")
            case = {**defaults, **raw}
            results.append(run_case(bundle, name, i, case, calendar))
    return SuiteReport(tuple(results))


def _suites(bundle: Bundle) -> Iterator[tuple[str, dict[str, Any]]]:
    for name in sorted(bundle.files):
        if not name.startswith("tests/"):
            continue
        try:
            suite = yaml.safe_load(bundle.files[name])
        except yaml.YAMLError as e:
            raise SuiteError(f"{name}: not YAML: {e}") from e
        if not isinstance(suite, dict) or not isinstance(suite.get("cases"), list):
            raise SuiteError(f"{name}: a suite is a mapping with a `cases` list")
        yield name, suite


def run_case(bundle: Bundle, suite: str, index: int, case: Mapping[str, Any],
             calendar: BusinessCalendar) -> CaseResult:
    description = str(case.get("description") or f"case {index + 1}")
    try:
        now = _time(case.get("now", DEFAULT_NOW))
        identity = case_identity(case, now)
        live = InMemoryContext(calendar=calendar).snapshot(identity.principal_id, now)
        overrides = case.get("live") or {}
        live = live.with_overrides(**overrides) if overrides else live
        resource = case["resource"]
        decision = decide(
            bundle, identity=identity, action=str(case["action"]),
            resource=ResourceRef(
                type=resource["type"], id=str(resource["id"]), attrs=resource.get("attrs"),
                parents=tuple((p["type"], p["id"]) for p in resource.get("parents", []))),
            context=case.get("context") or {}, live=live, now=now)
        expect = case["expect"]
    except (KeyError, TypeError, ValueError) as e:
        raise SuiteError(f"{suite}: case {description!r}: {type(e).__name__}: {e}") from e
    return CaseResult(suite=suite, description=description,
                      passed=not (problems := _compare(decision, expect)),
                      problems=tuple(problems), decision=decision)


def _compare(decision: Decision, expect: Mapping[str, Any]) -> list[str]:
    problems = []
    if decision.decision != expect["decision"]:
        problems.append(f"expected {expect['decision']}, got {decision.decision}: "
                        f"{decision.explanation}")
    if "policies" in expect:
        got = sorted(r.policy for r in decision.reasons)
        if got != sorted(expect["policies"] or []):
            problems.append(f"expected determining policies {sorted(expect['policies'] or [])}, "
                            f"got {got}")
    code = expect.get("reason_code")
    if code is not None and code not in decision.reason_codes:
        problems.append(f"expected reason code {code}, got {list(decision.reason_codes)}")
    return problems


def case_identity(case: Mapping[str, Any], now: datetime) -> VerifiedIdentity:
    """A verified identity as the case describes it (tests assert identities)."""
    raw = case["principal"]
    spec: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {"id": raw}
    principal_id = str(spec["id"])
    trust_domain = path = ""
    try:
        spiffe = parse_spiffe_id(principal_id)
        trust_domain, path = spiffe.trust_domain, spiffe.path
    except BadSpiffeId:
        pass
    ages = case.get("credential") or {}
    issued = now - timedelta(seconds=int(ages.get("age_s", 30)))
    return VerifiedIdentity(
        principal_id=principal_id,
        kind=spec.get("kind", "jwt-svid" if trust_domain else "jwt"),
        issuer=spec.get("issuer", f"spiffe://{trust_domain}" if trust_domain else "test"),
        trust_domain=trust_domain, path=path,
        scopes=frozenset(spec.get("scopes", case.get("scopes", []))),
        groups=frozenset(spec.get("groups", [])),
        issued_at=issued,
        expires_at=issued + timedelta(seconds=int(ages.get("lifetime_s", 300))),
    )


def _time(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(
        str(value).replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)
