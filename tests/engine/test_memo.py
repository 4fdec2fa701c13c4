"""The engine's memo of Cedar handles: bounded, least recently used dropped first."""

from __future__ import annotations

from pdp.engine.memo import Memo


def test_a_value_is_built_once_and_then_served() -> None:
    memo: Memo[str, list[str]] = Memo(4)
    builds: list[str] = []
    first = memo.get("a", lambda: builds.append("a") or ["a"])
    assert memo.get("a", lambda: builds.append("again") or ["other"]) is first
    assert builds == ["a"]


def test_the_bound_holds_and_the_least_recently_used_goes_first() -> None:
    memo: Memo[int, int] = Memo(2)
    memo.get(1, lambda: 10)
    memo.get(2, lambda: 20)
    memo.get(1, lambda: -1)  # 1 is now the most recently used
    memo.get(3, lambda: 30)  # evicts 2
    assert len(memo) == 2
    assert memo.get(1, lambda: -1) == 10
    assert memo.get(2, lambda: 21) == 21  # rebuilt: it had been dropped
