"""Which policies and which conditions a bundle's test suites exercise.

A policy is covered when it decided at least one case (for a template: when
one of its grants did). A condition — a conjunct of a ``when`` clause or a
disjunct of an ``unless`` clause — is covered when the suite saw it both
hold and fail on requests within its policy's scope, as Cedar evaluated it
(``pdp.engine.whynot``), like branch coverage in code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pdp.engine.bundle import Bundle
from pdp.engine.grants import LINK_PREFIX
from pdp.engine.whynot import PolicyDiagnosis, conditions_of


@dataclass
class CoverageTracker:
    bundle: Bundle
    decided: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    outcomes: dict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))

    def observe(self, determining: Iterable[str], templates_by_link: dict[str, str],
                diagnosis: Iterable[PolicyDiagnosis]) -> None:
        for pid in determining:
            self.decided[templates_by_link.get(pid, pid)] += 1
        for d in diagnosis:
            if not d.scope_matched:
                continue
            for i, c in enumerate(d.conditions):
                self.outcomes[(d.policy.id, i)].add(
                    "error" if c.held is None else ("true" if c.held else "false"))

    def report(self) -> CoverageReport:
        policies, conditions = [], []
        for info in self.bundle.policies.values():
            policies.append(PolicyCoverage(info.id, info.file, self.decided.get(info.id, 0)))
            for i, c in enumerate(conditions_of(info.node)):
                seen = self.outcomes.get((info.id, i), set())
                conditions.append(ConditionCoverage(info.id, c.clause, c.text,
                                                    "true" in seen, "false" in seen))
        return CoverageReport(tuple(policies), tuple(conditions))


@dataclass(frozen=True, slots=True)
class PolicyCoverage:
    policy: str
    file: str
    decided: int

    @property
    def covered(self) -> bool:
        return self.decided > 0


@dataclass(frozen=True, slots=True)
class ConditionCoverage:
    policy: str
    clause: str
    condition: str
    seen_true: bool
    seen_false: bool

    @property
    def covered(self) -> bool:
        return self.seen_true and self.seen_false


@dataclass(frozen=True, slots=True)
class CoverageReport:
    policies: tuple[PolicyCoverage, ...]
    conditions: tuple[ConditionCoverage, ...]

    @property
    def percent(self) -> float:
        """Covered items over all items: each policy counts once, each condition twice
        (true and false), so a suite that only ever sees a guard pass is not 100%."""
        total = len(self.policies) + 2 * len(self.conditions)
        if total == 0:
            return 100.0
        got = sum(p.covered for p in self.policies) + sum(
            c.seen_true + c.seen_false for c in self.conditions)
        return 100.0 * got / total

    def lines(self) -> list[str]:
        out = [f"coverage: {self.percent:.1f}% "
               f"({sum(p.covered for p in self.policies)}/{len(self.policies)} policies decided "
               f"a case, {sum(c.covered for c in self.conditions)}/{len(self.conditions)} "
               f"conditions seen both true and false)"]
        for p in self.policies:
            if not p.covered:
                out.append(f"  never decided: {p.policy} ({p.file})")
        for c in self.conditions:
            if not c.covered:
                missing = " and ".join(x for x, seen in (("true", c.seen_true),
                                                         ("false", c.seen_false)) if not seen)
                out.append(f"  never {missing}: {c.policy} {c.clause} `{c.condition}`")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"percent": round(self.percent, 1),
                "policies": [{"policy": p.policy, "file": p.file, "decided": p.decided}
                             for p in self.policies],
                "conditions": [{"policy": c.policy, "clause": c.clause, "condition": c.condition,
                                "seen_true": c.seen_true, "seen_false": c.seen_false}
                               for c in self.conditions]}


def templates_of(links: Iterable[Any]) -> dict[str, str]:
    """Link id -> template id for the grants a case declared."""
    return {g.link_id: g.template for g in links if g.link_id.startswith(LINK_PREFIX)}
