"""Impact analysis: which decisions a candidate bundle would change.

What a reviewer reads on a policy pull request. Two sets of requests are
decided under the **current** bundle and under the **candidate**, and every
request whose decision differs is a flip:

- every case of both bundles' test suites (the candidate may add cases);
- recorded decisions from the log (a time window, a sample, or all), rebuilt
  with :mod:`pdp.authoring.replay` from what each record kept.

Comparing current with candidate, rather than with what was recorded,
isolates the change under review from earlier bundle changes. Flips are
grouped by the policy that explains them (the candidate's determining policy,
else the current one's) and by principal, with examples.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from context.calendar import BusinessCalendar
from pdp.authoring.policytests import SuiteError, case_inputs, parse_time, suites
from pdp.authoring.replay import NotReplayable, replay_decision, replay_inputs
from pdp.decision.model import Decision
from pdp.engine.bundle import Bundle

FailOn = Literal["any", "allow-to-deny", "deny-to-allow", "none"]


@dataclass(frozen=True, slots=True)
class Flip:
    source: Literal["test", "log"]
    ref: str  # the test case ("suite: description") or the decision id
    principal: str | None
    action: str | None
    resource: str | None
    before: str
    after: str
    before_policies: tuple[str, ...]
    after_policies: tuple[str, ...]
    explanation: str

    @property
    def direction(self) -> str:
        return f"{self.before}->{self.after}"

    @property
    def policy(self) -> str:
        """The policy that explains the flip."""
        if self.after_policies:
            return self.after_policies[0]
        return self.before_policies[0] if self.before_policies else "(default deny)"

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "ref": self.ref, "principal": self.principal,
                "action": self.action, "resource": self.resource, "before": self.before,
                "after": self.after, "before_policies": list(self.before_policies),
                "after_policies": list(self.after_policies), "explanation": self.explanation}


@dataclass
class ImpactReport:
    flips: list[Flip] = field(default_factory=list)
    tests_evaluated: int = 0
    records_evaluated: int = 0
    records_skipped: int = 0

    def by_policy(self) -> dict[str, list[Flip]]:
        out: dict[str, list[Flip]] = defaultdict(list)
        for f in self.flips:
            out[f.policy].append(f)
        return dict(out)

    def by_principal(self) -> dict[str, list[Flip]]:
        out: dict[str, list[Flip]] = defaultdict(list)
        for f in self.flips:
            out[f.principal or "(none)"].append(f)
        return dict(out)

    def fails(self, fail_on: FailOn) -> bool:
        wanted = {"any": {"allow->deny", "deny->allow"}, "allow-to-deny": {"allow->deny"},
                  "deny-to-allow": {"deny->allow"}, "none": set()}[fail_on]
        return any(f.direction in wanted for f in self.flips)

    def lines(self, examples: int = 3) -> list[str]:
        counts: defaultdict[str, int] = defaultdict(int)
        for f in self.flips:
            counts[f.direction] += 1
        out = [f"impact: {len(self.flips)} decisions would change "
               f"({counts['allow->deny']} allow->deny, {counts['deny->allow']} deny->allow) "
               f"out of {self.tests_evaluated} test cases and {self.records_evaluated} "
               f"logged decisions ({self.records_skipped} logged decisions not replayable)"]
        for policy, flips in sorted(self.by_policy().items()):
            out.append(f"  policy {policy}: {len(flips)} flips")
            for f in flips[:examples]:
                out.append(f"    {f.direction} {f.source} {f.ref}: {f.principal} {f.action} "
                           f"{f.resource}")
        for principal, flips in sorted(self.by_principal().items()):
            out.append(f"  principal {principal}: {len(flips)} flips")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"flips": [f.as_dict() for f in self.flips],
                "by_policy": {k: len(v) for k, v in self.by_policy().items()},
                "by_principal": {k: len(v) for k, v in self.by_principal().items()},
                "tests_evaluated": self.tests_evaluated,
                "records_evaluated": self.records_evaluated,
                "records_skipped": self.records_skipped}


def impact(current: Bundle, candidate: Bundle, *, records: Iterable[Mapping[str, Any]] = (),
           calendar: BusinessCalendar | None = None) -> ImpactReport:
    report = ImpactReport()
    _compare_tests(current, candidate, calendar or BusinessCalendar(), report)
    _compare_records(current, candidate, records, report)
    return report


def select_records(records: Iterable[Mapping[str, Any]], *, since: datetime | None = None,
                   until: datetime | None = None, sample: int | None = None,
                   seed: int = 0) -> list[Mapping[str, Any]]:
    """Decision records in [since, until), optionally a reproducible random sample of them."""
    chosen = [r for r in records if r.get("kind", "decision") == "decision"
              and _in_window(r.get("timestamp"), since, until)]
    if sample is not None and sample < len(chosen):
        chosen = random.Random(seed).sample(chosen, sample)
    return chosen


def _in_window(stamp: Any, since: datetime | None, until: datetime | None) -> bool:
    if stamp is None:
        return False
    at = parse_time(stamp)
    return (since is None or at >= since) and (until is None or at < until)


def _compare_tests(current: Bundle, candidate: Bundle, calendar: BusinessCalendar,
                   report: ImpactReport) -> None:
    seen: set[tuple[str, str]] = set()
    for bundle in (current, candidate):
        for name, suite in suites(bundle):
            defaults = suite.get("defaults") or {}
            for i, raw in enumerate(suite["cases"]):
                case = {**defaults, **raw}
                key = (name, str(case.get("description") or i))
                if key in seen:
                    continue
                seen.add(key)
                before, after = (_decide_case(b, case, calendar) for b in (current, candidate))
                report.tests_evaluated += 1
                _note(report, "test", f"{name}: {key[1]}", before, after)


def _decide_case(bundle: Bundle, case: Mapping[str, Any], calendar: BusinessCalendar) -> Decision:
    try:
        return case_inputs(case, calendar).decide(bundle)
    except (KeyError, TypeError, ValueError) as e:
        raise SuiteError(f"case {case.get('description')!r}: {e}") from e


def _compare_records(current: Bundle, candidate: Bundle,
                     records: Iterable[Mapping[str, Any]], report: ImpactReport) -> None:
    for record in records:
        try:
            inputs = replay_inputs(record)
        except NotReplayable:
            report.records_skipped += 1
            continue
        report.records_evaluated += 1
        _note(report, "log", inputs.decision_id or "", replay_decision(inputs, current),
              replay_decision(inputs, candidate))


def _note(report: ImpactReport, source: Literal["test", "log"], ref: str, before: Decision,
          after: Decision) -> None:
    if before.decision == after.decision:
        return
    report.flips.append(Flip(
        source=source, ref=ref, principal=after.identity.principal_id if after.identity else None,
        action=after.action, resource=after.resource, before=before.decision,
        after=after.decision, before_policies=tuple(r.policy for r in before.reasons),
        after_policies=tuple(r.policy for r in after.reasons), explanation=after.explanation))


def parse_when(text: str | None) -> datetime | None:
    """``2026-01-05T10:00:00Z``, or a relative ``7d`` / ``24h`` before now."""
    if not text:
        return None
    if text[-1] in "dhm" and text[:-1].isdigit():
        unit = {"d": "days", "h": "hours", "m": "minutes"}[text[-1]]
        return datetime.now(UTC) - timedelta(**{unit: int(text[:-1])})
    return parse_time(text)
