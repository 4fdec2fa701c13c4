"""``LiveSnapshot.to_cedar`` is rendered once per snapshot (a memo slot on the frozen
snapshot, not a module-global "last snapshot"): attacked with interleaved snapshots that
differ in one value, copies made after a rendering, and snapshots equal in value."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from context.model import LiveSnapshot, cedar_datetime, to_milliseconds
from tests.conftest import MONDAY_10

snapshots = st.builds(
    LiveSnapshot,
    now=st.integers(0, 10**6).map(lambda ms: MONDAY_10 + timedelta(milliseconds=ms)),
    incident=st.booleans(), risk_level=st.integers(0, 4), business_hours=st.booleans(),
    degraded=st.sampled_from([(), ("incident",)]), incident_level=st.integers(0, 3),
    global_risk_level=st.integers(0, 4), principal_risk_level=st.integers(0, 4),
    signals=st.lists(st.sampled_from(["burst", "scan"]), max_size=2).map(tuple))


def fresh(snapshot: LiveSnapshot) -> bytes:
    return orjson.dumps(snapshot._render_cedar())


@settings(max_examples=60, deadline=None)
@given(pool=st.lists(snapshots, min_size=1, max_size=5),
       order=st.lists(st.integers(0, 4), min_size=1, max_size=15))
def test_each_snapshot_renders_its_own_value_whatever_was_rendered_before(pool, order) -> None:
    for i in order:
        snapshot = pool[i % len(pool)]
        assert orjson.dumps(snapshot.to_cedar()) == fresh(snapshot)


@settings(max_examples=40, deadline=None)
@given(snapshot=snapshots, level=st.integers(0, 4))
def test_a_copy_made_after_a_rendering_shows_its_own_values(snapshot, level) -> None:
    snapshot.to_cedar()
    for copy in (replace(snapshot, risk_level=level, global_risk_level=level),
                 snapshot.with_overrides(risk_level=level),
                 replace(snapshot, now=snapshot.now + timedelta(seconds=1))):
        assert orjson.dumps(copy.to_cedar()) == fresh(copy)


def test_equal_snapshots_stay_equal_whether_rendered_or_not() -> None:
    one = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=1, business_hours=True)
    two = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=1, business_hours=True)
    one.to_cedar()
    assert one == two and "_cedar" not in repr(one)


def test_the_rendering_is_made_once_and_shared() -> None:
    snapshot = LiveSnapshot(now=MONDAY_10, incident=True, risk_level=2, business_hours=False)
    assert snapshot.to_cedar() is snapshot.to_cedar()


@settings(max_examples=40, deadline=None)
@given(snapshot=snapshots, shift_ms=st.integers(1, 10**6), cedar_first=st.booleans())
def test_now_is_formatted_once_yet_each_snapshot_shows_its_own(
        snapshot, shift_ms, cedar_first) -> None:
    """``to_cedar`` and ``as_dict`` share the formatted ``now``; a copy with another
    ``now`` made after either was rendered shows its own, in both."""
    first = snapshot.to_cedar if cedar_first else snapshot.as_dict
    first()
    later = replace(snapshot, now=snapshot.now + timedelta(milliseconds=shift_ms))
    for shown in (snapshot, later):
        text = cedar_datetime(shown.now)
        assert shown.as_dict()["now"] == text
        assert shown.to_cedar()["now"] == {"__extn": {"fn": "datetime", "arg": text}}
    assert later.as_dict()["now"] != snapshot.as_dict()["now"]


instants = st.builds(
    lambda at, offset_min: at.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=offset_min))),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    st.sampled_from([0, 0, 60, -330, 345, 14 * 60 - 1]))


@settings(max_examples=300, deadline=None)
@given(at=instants, whole_second=st.booleans())
def test_the_millisecond_text_cut_from_the_microsecond_text_is_cedar_datetimes(
        at, whole_second) -> None:
    """``cedar_datetime`` is derived from ``now_text`` (one ``isoformat``): equal for any
    instant and zone, a zero fraction (no fraction in ``isoformat``) included."""
    at = at.replace(microsecond=0) if whole_second else at
    snapshot = LiveSnapshot(now=at, incident=False, risk_level=0, business_hours=True)
    assert snapshot.now_text() == at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert to_milliseconds(snapshot.now_text()) == cedar_datetime(at)
    assert snapshot.as_dict()["now"] == cedar_datetime(at)
    assert snapshot.to_cedar()["now"]["__extn"]["arg"] == cedar_datetime(at)
