"""bench/RESULTS.md prints a speed-up as a multiple and says met / not met (issue 16):
a "0.01" hid that 94× missed a ≥ 100× target."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.harness import Comparison, table

pytestmark = pytest.mark.slow


def test_a_miss_of_a_speed_up_target_reads_as_a_miss() -> None:
    row = Comparison("decide() vs raw cedarpy, 10,000 policies", 203.0, 19110.5,
                     "raw", "ours ≥ 100× faster", faster_at_least=100)
    line = table([row]).splitlines()[-1]
    assert "94× faster" in line and "**not met**" in line and "0.01" not in line


@given(ours=st.floats(1, 1e6), baseline=st.floats(1, 1e6), bound=st.floats(0.1, 10))
def test_the_verdict_follows_the_ratio(ours: float, baseline: float, bound: float) -> None:
    at_most = Comparison("x", ours, baseline, "b", "t", at_most=bound).target_text()
    assert at_most.endswith("**met**") == (ours / baseline <= bound)
    faster = Comparison("x", ours, baseline, "b", "t", faster_at_least=bound).target_text()
    assert faster.endswith("**met**") == (baseline / ours >= bound)
    assert Comparison("x", ours, baseline, "b", "t").target_text() == "t"  # no number: as given
