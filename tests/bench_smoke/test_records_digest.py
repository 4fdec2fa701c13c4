"""``bench.records_digest``: the same seed gives the same digest (else two trees could not
be compared by it), another seed another one."""

from __future__ import annotations

from bench.records_digest import digest


def test_the_digest_is_a_function_of_the_seed() -> None:
    first, identities = digest(seed=3, count=60)
    assert digest(seed=3, count=60) == (first, identities) and identities > 1
    assert digest(seed=4, count=60)[0] != first
