"""``Metrics.observe_decision`` keeps the decisions counter's children by (decision, reason):
the counts it makes are those ``labels()`` reads, for every kind interleaved."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pdp.decision.model import Decision
from pdp.metrics import Metrics
from tests.conftest import MONDAY_10

KINDS = [("allow", ("policy.permit",)), ("deny", ("policy.no_permit",)),
         ("deny", ("identity.expired", "context.degraded")), ("deny", ())]


def decision(outcome: str, codes: tuple[str, ...]) -> Decision:
    return Decision(decision_id="d", decision=outcome, timestamp=MONDAY_10,  # type: ignore[arg-type]
                    principal=None, action=None, resource=None, reasons=(), reason_codes=codes,
                    explanation="", errors=(), version=None, live=None, valid_until=MONDAY_10)


@given(st.lists(st.sampled_from(range(len(KINDS))), max_size=30))
def test_each_decision_is_counted_once_under_its_outcome_and_first_reason(picks) -> None:
    metrics = Metrics()
    for pick in picks:
        metrics.observe_decision(decision(*KINDS[pick]), 0.001)
    expected: dict[tuple[str, str], int] = {}
    for pick in picks:
        outcome, codes = KINDS[pick]
        key = (outcome, codes[0] if codes else "none")
        expected[key] = expected.get(key, 0) + 1
    for (outcome, reason), count in expected.items():
        assert metrics.registry.get_sample_value(
            "pdp_decisions_total", {"decision": outcome, "reason": reason}) == count
        assert metrics.decisions.labels(outcome, reason)._value.get() == count
    assert metrics.registry.get_sample_value("pdp_decision_latency_seconds_count") == len(picks)
