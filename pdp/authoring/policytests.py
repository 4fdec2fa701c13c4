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
        grants: [{template: grant.dataset.read, expires_in_s: 900}]   # task grants, optional
        live_state:                                      # optional: state the provider holds
          incidents: [{scope: "resource_tag:pii", level: 3}]   # matched against this request
          global_risk: 1
          principal_risk: 2                              # this case's principal
          automatic_risk: {level: 2, evidence: ["25 denies in 60 s"], signals: [deny_burst]}
        expect:
          decision: allow
          policies: [dataset.pipelines.read-write]       # the determining policies, exactly
          reason_code: policy.permit                     # optional

``principal`` may be a mapping: ``{id, kind, issuer, scopes, groups}``, plus
``actor`` (an RFC 8693 acting workload, which the policies must allow too),
``actor_issuer`` and ``earlier_actors``. The
clock is frozen at ``now`` and live values default to the configured ones, so
a case decides the same way on every machine and every day.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from context.calendar import BusinessCalendar
from context.memory import InMemoryContext
from context.scope import resource_tags
from pdp.authoring.coverage import CoverageTracker, templates_of
from pdp.authoring.suite_schema import check_suite
from pdp.decision.inputs import DecideInputs
from pdp.decision.model import Decision, ResourceRef
from pdp.engine.bundle import Bundle
from pdp.engine.grants import Grant
from pdp.identity.errors import BadSpiffeId
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import parse_spiffe_id

# Cases that never reached Cedar say nothing about coverage.
NOT_EVALUATED = {"request.invalid", "request.unknown_action", "engine.no_bundle"}
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


def run_suites(bundle: Bundle, *, calendar: BusinessCalendar | None = None,
               coverage: CoverageTracker | None = None) -> SuiteReport:
    """Run every ``tests/*.yaml`` of ``bundle``; a malformed suite raises ``SuiteError``.

    With ``coverage``, every case also records which policies decided it and how
    each in-scope condition evaluated.
    """
    calendar = calendar or BusinessCalendar()
    results: list[CaseResult] = []
    for name, suite in suites(bundle):
        defaults = suite.get("defaults") or {}
        for i, raw in enumerate(suite["cases"]):
            if not isinstance(raw, Mapping):
                raise SuiteError(f"{name}: case {i + 1} is not a mapping")
            case = {**defaults, **raw}
            results.append(run_case(bundle, name, i, case, calendar, coverage))
    return SuiteReport(tuple(results))


def suites(bundle: Bundle) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every suite of ``bundle``, after checking them all against the schema
    (:mod:`pdp.authoring.suite_schema`): any problem in any file raises one ``SuiteError``
    listing them all, with file and line, before a single case runs."""
    checked: list[tuple[str, dict[str, Any]]] = []
    problems: list[str] = []
    for name in sorted(bundle.files):
        if not name.startswith("tests/") or not name.endswith((".yaml", ".yml")):
            continue
        suite, found = check_suite(name, bundle.files[name], bundle)
        problems += found
        checked.append((name, suite))
    if problems:
        raise SuiteError("\n".join(problems))
    yield from checked


def case_inputs(case: Mapping[str, Any], calendar: BusinessCalendar,
                bundle: Bundle | None = None) -> DecideInputs:
    """Read a case (``KeyError``/``TypeError``/``ValueError`` when it is malformed).

    ``live_state`` (incidents by scope, risk levels, an automatic raise; see
    ``InMemoryContext.from_spec``) goes through the same provider as the server,
    so scope matching is tested too; ``bundle`` supplies static resources' tags.
    """
    now = parse_time(case.get("now", DEFAULT_NOW))
    identity = case_identity(case, now)
    resource = case["resource"]
    state = case.get("live_state")
    provider = (InMemoryContext.from_spec(state, calendar=calendar,
                                          principal_id=identity.principal_id, now=now)
                if state else InMemoryContext(calendar=calendar))
    live = provider.snapshot(
        identity.principal_id, now, resource_type=resource["type"],
        resource_tags=resource_tags(ResourceRef(type=resource["type"], id=str(resource["id"]),
                                                attrs=resource.get("attrs")), bundle))
    overrides = case.get("live") or {}
    live = live.with_overrides(**overrides) if overrides else live
    return DecideInputs(
        identity=identity, action=str(case["action"]),
        resource=ResourceRef(
            type=resource["type"], id=str(resource["id"]), attrs=resource.get("attrs"),
            parents=tuple((p["type"], p["id"]) for p in resource.get("parents", []))),
        context=case.get("context") or {}, live=live, now=now,
        grants=tuple(case_grants(case, identity.principal_id, resource, now)))


def run_case(bundle: Bundle, suite: str, index: int, case: Mapping[str, Any],
             calendar: BusinessCalendar, coverage: CoverageTracker | None = None) -> CaseResult:
    description = str(case.get("description") or f"case {index + 1}")
    try:
        inputs = case_inputs(case, calendar, bundle)
        decision = inputs.decide(bundle)
        expect = case["expect"]
        if coverage is not None and decision.reason_codes[0] not in NOT_EVALUATED:
            coverage.observe([r.policy for r in decision.reasons], templates_of(inputs.grants),
                             inputs.diagnose(bundle))
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


def case_grants(case: Mapping[str, Any], principal: str, resource: Mapping[str, Any],
                now: datetime) -> list[Grant]:
    """Task grants a case declares: ``grants: [{template, expires_in_s, principal?, resource?}]``.

    ``principal`` and ``resource`` default to the case's own; a negative
    ``expires_in_s`` makes a grant that has already expired.
    """
    out = []
    for i, spec in enumerate(case.get("grants") or []):
        target = spec.get("resource", resource)
        out.append(Grant(
            id=f"case-{i}", template=str(spec["template"]),
            principal=str(spec.get("principal", principal)),
            resource_type=str(target["type"]), resource_id=str(target["id"]),
            expires_at=now + timedelta(seconds=int(spec.get("expires_in_s", 900))),
            task=str(spec.get("task", "test")), created_by=None, created_at=now))
    return out


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
        # RFC 8693 delegation: `actor` acts for the principal (earlier actors are records only).
        actor=spec.get("actor"),
        chain_depth=(1 + len(spec.get("earlier_actors", []))) if spec.get("actor") else 0,
        actor_chain=tuple(spec.get("earlier_actors", [])),
        actor_issuer=spec.get("actor_issuer"),
    )


def parse_time(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(
        str(value).replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def write_junit(report: SuiteReport, path: Path) -> None:
    """JUnit XML: one <testsuite> per YAML file, one <testcase> per case."""
    root = ET.Element("testsuites", tests=str(len(report.results)),
                      failures=str(report.failed))
    suites: dict[str, ET.Element] = {}
    for result in report.results:
        suite = suites.get(result.suite)
        if suite is None:
            suite = suites[result.suite] = ET.SubElement(root, "testsuite", name=result.suite)
        case = ET.SubElement(suite, "testcase", classname=result.suite, name=result.description)
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.problems[0])
            failure.text = "\n".join(result.problems)
    for name, suite in suites.items():
        cases = [r for r in report.results if r.suite == name]
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(not r.passed for r in cases)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
