"""The static entities' buffer gives back exactly what entities.json held, by uid.

``EntityRecords`` replaces a dict of parsed entities so that a forked worker's
lookups write no page its supervisor built (pdp.engine.entity_records). These
tests attack what that costs: values JSON round-trips could change (NaN, big
integers, lone surrogates), uids that collide in the hash or in a joined text,
a uid given twice, and a lookup handing out an object the buffer keeps.
"""

from __future__ import annotations

import json
import math
import random
from array import array
from typing import Any

import pytest

from pdp.engine import entity_records
from pdp.engine.entity_records import EntityRecords


def _entity(type_: str, id_: str, attrs: Any = None) -> dict[str, Any]:
    return {"uid": {"type": type_, "id": id_}, "attrs": attrs or {}, "parents": []}


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values, NaN equal to NaN (and a float never equal to an int)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


AWKWARD = [
    float("nan"), float("inf"), -float("inf"), 2**64 + 1, -(2**70), 2**63 - 1, 1.5, 0.1, -0.0,
    "\ud800", "é\u2028\x00", "", None, True, [], {}, [float("nan"), {"k": 10**30}],
]


def test_every_value_reads_back_as_it_was_given():
    rng = random.Random(3)
    given = {}
    for i in range(2000):
        attrs = {f"a{j}": rng.choice(AWKWARD) for j in range(rng.randrange(4))}
        given[("T", f"e{i}")] = _entity("T", f"e{i}", attrs)
    records = EntityRecords(given.items())
    assert len(records) == len(given)
    for uid, entity in given.items():
        assert _same(records[uid], entity), uid
        assert _same(records.attrs()[uid], entity["attrs"])
    assert set(records) == set(given)


def test_a_uid_given_twice_keeps_its_last_entity_as_a_dict_would():
    records = EntityRecords([(("T", "x"), _entity("T", "x", {"v": 1})),
                             (("T", "x"), _entity("T", "x", {"v": 2}))])
    assert len(records) == 1
    assert records[("T", "x")]["attrs"] == {"v": 2}


def test_uids_that_join_to_the_same_text_stay_apart():
    # Joined by a separator these two would share a key text; neither may answer for the other.
    records = EntityRecords([(("A\0B", "C"), _entity("A\0B", "C", {"v": 1}))])
    assert ("A", "B\0C") not in records
    assert records.get(("A", "B\0C")) is None
    assert records[("A\0B", "C")]["attrs"] == {"v": 1}
    assert list(records) == [("A\0B", "C")]
    both = EntityRecords([(("A\0B", "C"), _entity("A\0B", "C", {"v": 1})),
                          (("A", "B\0C"), _entity("A", "B\0C", {"v": 2}))])
    assert both[("A", "B\0C")]["attrs"] == {"v": 2}
    assert both[("A\0B", "C")]["attrs"] == {"v": 1}


@pytest.mark.parametrize("size", [1, 2, 50])
def test_uids_sharing_a_hash_are_told_apart_by_their_text(monkeypatch, size):
    monkeypatch.setattr(entity_records, "_hash", lambda _key: 7)
    given = {("T", f"e{i}"): _entity("T", f"e{i}", {"n": i}) for i in range(size)}
    records = EntityRecords(given.items())
    for uid, entity in given.items():
        assert records[uid] == entity
        assert uid in records
    assert ("T", "absent") not in records
    assert ("U", "e0") not in records
    with pytest.raises(KeyError):
        records[("T", "absent")]


def test_a_miss_is_a_miss():
    records = EntityRecords([(("T", "x"), _entity("T", "x"))])
    assert ("T", "y") not in records and ("U", "x") not in records
    assert ("T",) not in records and "T" not in records and (1, "x") not in records
    assert records.get(("T", "y")) is None
    assert ("T", "y") not in records.attrs()
    empty = EntityRecords(())
    assert len(empty) == 0 and ("T", "x") not in empty and list(empty) == []


def test_a_lookup_hands_out_a_new_object_and_the_records_hold_only_buffers():
    """What makes a forked worker's lookups leave the shared pages alone: nothing kept
    per entity as a Python object, so nothing whose reference count a lookup writes."""
    records = EntityRecords((("T", f"e{i}"), _entity("T", f"e{i}", {"n": i}))
                            for i in range(100))
    first, second = records[("T", "e5")], records[("T", "e5")]
    assert first == second and first is not second
    first["attrs"]["n"] = -1  # a caller's change stays its own
    assert records[("T", "e5")]["attrs"]["n"] == 5
    held = [v for v in vars(records).values()]
    assert all(isinstance(v, (bytes, array)) for v in held), [type(v) for v in held]


def test_the_bundles_entities_are_the_files(tmp_path):
    """Loaded as a bundle: static_uids and static_attrs answer from the buffer."""
    from pdp.engine import load_bundle
    from tests.engine.test_entity_slice import POLICIES, SCHEMA

    entities = [_entity("Doc", f"d{i}", {"public": i % 2 == 0}) for i in range(50)]
    (tmp_path / "schema.cedarschema").write_text(SCHEMA)
    (tmp_path / "policies.cedar").write_text(POLICIES)
    (tmp_path / "entities.json").write_text(json.dumps(entities))
    bundle = load_bundle(tmp_path)
    assert set(bundle.static_uids) == {("Doc", f"d{i}") for i in range(50)}
    assert bundle.static_attrs[("Doc", "d3")] == {"public": False}
    assert ("Doc", "d50") not in bundle.static_uids

