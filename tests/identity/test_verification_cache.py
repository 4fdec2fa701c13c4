"""The verified-credential cache (cachetools' TLRU): bounded, and never serving a credential
past its own expiry, on the verifier's injected clock rather than the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.identity.model import BearerToken, VerifiedIdentity
from pdp.identity.verifier import VerificationCache, _cache_key, _Verified
from tests.conftest import examples

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
IDENTITY = VerifiedIdentity(principal_id="spiffe://example.org/a", kind="jwt-svid",
                            issuer="spiffe://example.org", trust_domain="example.org")


def entry(valid_until: datetime) -> _Verified:
    """An entry whose re-check never refuses: only the cache stands between it and a hit."""
    return _Verified(IDENTITY, lambda _at: None, ("bundle", "example.org"), valid_until)


def test_an_entry_is_never_served_at_or_after_its_credential_expiry() -> None:
    cache = VerificationCache(10)
    until = T0 + timedelta(seconds=60)
    cache.put("k", entry(until), T0)
    assert cache.get("k", until - timedelta(microseconds=1)) is not None
    assert cache.get("k", until) is None
    assert cache.get("k", until + timedelta(days=1)) is None


def test_an_entry_already_expired_is_not_kept() -> None:
    cache = VerificationCache(10)
    cache.put("k", entry(T0), T0)
    assert cache.get("k", T0 - timedelta(seconds=1)) is None and len(cache) == 0


def test_expired_entries_go_before_live_ones_when_full() -> None:
    cache = VerificationCache(2)
    cache.put("short", entry(T0 + timedelta(seconds=10)), T0)
    cache.put("long", entry(T0 + timedelta(hours=1)), T0)
    assert cache.get("short", T0) is not None  # "long" is now the least recently used
    later = T0 + timedelta(seconds=20)
    cache.put("new", entry(T0 + timedelta(hours=1)), later)
    assert cache.get("long", later) is not None and cache.get("new", later) is not None
    assert cache.get("short", T0) is None  # dropped, not just hidden


def test_a_cached_token_is_not_served_after_exp_plus_leeway(tk: Any) -> None:
    verifier = tk.verifier()  # leeway 30 s
    token = BearerToken(tk.svid({"exp": tk.t + 60}))
    verifier.verify(token, tk.now)
    key = _cache_key(token)
    assert verifier.cache.get(key, tk.now + timedelta(seconds=89)) is not None
    assert verifier.cache.get(key, tk.now + timedelta(seconds=90)) is None


def test_a_size_of_zero_caches_nothing() -> None:
    cache = VerificationCache(0)
    cache.put("k", entry(T0 + timedelta(hours=1)), T0)
    assert cache.get("k", T0) is None and len(cache) == 0


# One step: put (key, lifetime in s) or get key, each after the clock moved by a few seconds
# (backwards too: a verifier's ``now`` is the caller's, and clocks step).
steps = st.lists(st.tuples(st.sampled_from(["put", "get"]), st.integers(0, 7),
                           st.integers(-5, 40), st.integers(-20, 60)), max_size=60)


@settings(max_examples=examples(200), deadline=None)
@given(size=st.integers(1, 4), steps=steps)
def test_bounded_and_never_expired(size: int, steps: list[tuple[str, int, int, int]]) -> None:
    cache = VerificationCache(size)
    now = T0
    for op, n, lifetime_s, tick_s in steps:
        now += timedelta(seconds=tick_s)
        key = f"k{n}"
        if op == "put":
            until = now + timedelta(seconds=lifetime_s)
            cache.put(key, entry(until), now)
            got = cache.get(key, now)
            assert (got is not None) == (until > now)  # a live entry just put is there
        else:
            got = cache.get(key, now)
            assert got is None or got.valid_until > now
        assert len(cache) <= size
