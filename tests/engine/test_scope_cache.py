"""The scope cache (pdp.engine.scope_cache) lets a restart skip turning unchanged policy
files into nodes: attacked with tampered, truncated, padded, reshaped, swapped, linked,
shared-writable and foreign-owned entries, a changed policy file, a changed schema and a
node that disagrees with its facts. A bundle loaded on cached facts equals one loaded
without the cache and decides as raw Cedar does (generated bundles), before and after
its nodes are made."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from pdp.audit.auditing.archive import BundleArchive
from pdp.engine import bundle as bundle_module
from pdp.engine import scope_cache as cache_module
from pdp.engine.bundle import Bundle, load_bundle
from pdp.engine.lazy_nodes import LazyNode, LazyNodes, make_together, node_from_code
from pdp.engine.policy_source import split_policies
from pdp.engine.scope_cache import ScopeCache
from pdp.engine.validation_cache import ValidationCache
from tests.conftest import POLICIES, examples
from tests.engine.cedar_bundles import Case, cases
from tests.engine.test_differential_fuzz import check_requests

# The example bundle's copy and the caches' place are the validation cache tests' own.
from tests.engine.test_validation_cache import bundle_dir, cache, cold_then_warm  # noqa: F401


def entries(cache: ValidationCache) -> list[Path]:
    directory = ScopeCache.beside(cache).directory
    return sorted(directory.iterdir()) if directory.is_dir() else []


def from_cache(bundle: Bundle) -> set[str]:
    """The files whose policies were loaded on cached facts (their nodes not made yet)."""
    return {info.file for info in bundle.policies.values() if not info.lazy_node.is_made}


def assert_same_bundle(ours: Bundle, reference: Bundle) -> None:
    assert ours.version == reference.version
    assert ours.policies == reference.policies  # makes every node, and compares them
    assert ours.warnings == reference.warnings
    assert ours.index is not None and reference.index is not None
    assert dict(ours.index.policies) == dict(reference.index.policies)
    assert (ours.entity_slicer is None) == (reference.entity_slicer is None)


def rewrite(entry: Path, body: bytes) -> None:
    """Write ``body`` as the entry's content with a correct digest line: a forger who
    knows the format (but is not trusted with the directory, or changed the shape)."""
    key = entry.name.encode()
    entry.write_bytes(key + b"\n" + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


def test_a_restart_on_the_same_files_makes_no_node_until_one_is_used(
        bundle_dir: Path, cache: ValidationCache, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = load_bundle(bundle_dir)
    cold = load_bundle(bundle_dir, validation_cache=cache)
    assert not from_cache(cold)
    files = sorted(p.name for p in bundle_dir.glob("*.cedar"))
    assert len(entries(cache)) == len(files)
    parsed: list[str] = []
    real = bundle_module.parse_ahead
    monkeypatch.setattr(bundle_module, "parse_ahead",
                        lambda text, *a: parsed.append(text) or real(text, *a))
    warm = load_bundle(bundle_dir, validation_cache=cache)
    assert parsed == []  # no file was parsed into nodes
    assert sorted(from_cache(warm)) == files
    assert_same_bundle(warm, reference)


def test_archiving_a_bundle_loaded_on_cached_facts_makes_no_node_and_keeps_the_sources(
        bundle_dir: Path, cache: ValidationCache, tmp_path: Path) -> None:
    # A reload of changed entities on unchanged policies archives a bundle on cached facts:
    # making all 10,000 nodes for it took 2.2 s (bench/RESULTS.md, round 9: first).
    reference = BundleArchive(tmp_path / "reference")
    assert reference.store(load_bundle(bundle_dir))
    load_bundle(bundle_dir, validation_cache=cache)  # fills the caches
    warm = load_bundle(bundle_dir, validation_cache=cache)
    lazy = from_cache(warm)
    assert lazy
    archive = BundleArchive(tmp_path / "archive")
    assert archive.store(warm)
    assert from_cache(warm) == lazy  # no node was made to archive it
    sha = warm.version.sha256
    assert archive.policies(sha) == reference.policies(sha)


def test_a_changed_policy_file_is_never_served_from_the_old_entry(
        bundle_dir: Path, cache: ValidationCache) -> None:
    load_bundle(bundle_dir, validation_cache=cache)
    path = bundle_dir / "datasets.cedar"
    text = path.read_text()
    # The first policy's scope names another action.
    assert 'action == App::Action::"read",' in text
    path.write_text(text.replace('action == App::Action::"read",',
                                 'action == App::Action::"write",', 1))
    warm = load_bundle(bundle_dir, validation_cache=cache)
    assert "datasets.cedar" not in from_cache(warm)
    assert from_cache(warm)  # the other files still came from the cache
    assert_same_bundle(warm, load_bundle(bundle_dir))


def test_a_changed_schema_parses_again(bundle_dir: Path, cache: ValidationCache) -> None:
    load_bundle(bundle_dir, validation_cache=cache)
    schema = bundle_dir / "schema.cedarschema"
    schema.write_text(schema.read_text() + "\n// a comment changes the key\n")
    assert not from_cache(load_bundle(bundle_dir, validation_cache=cache))


def tampered(content: bytes) -> list[bytes]:
    key, digest, body = content.split(b"\n", 2)
    flipped = bytearray(body)
    flipped[len(flipped) // 2] ^= 0x01
    return [b"", content[:-1], content[: len(content) // 2], content + b" ",
            key + b"\n" + digest + b"\n" + bytes(flipped),  # a bit flipped in the facts
            b"0" * 64 + b"\n" + digest + b"\n" + body]  # another key's name inside


def test_a_tampered_or_truncated_entry_is_not_used(
        bundle_dir: Path, cache: ValidationCache) -> None:
    reference = load_bundle(bundle_dir)
    load_bundle(bundle_dir, validation_cache=cache)
    originals = {entry: entry.read_bytes() for entry in entries(cache)}
    for number in range(len(tampered(b"k\nd\nbody"))):
        for entry, content in originals.items():
            entry.write_bytes(tampered(content)[number])
        bundle = load_bundle(bundle_dir, validation_cache=cache)
        assert not from_cache(bundle), number
        assert_same_bundle(bundle, reference)


@pytest.mark.parametrize("body", [
    b"[]",  # no policies: the split finds more
    b'[["policy0", false, "maybe", [], [true, null, null], [true, null, null], null, []]]',
    b'{"not": "rows"}',
    b"not json",
])
def test_an_entry_of_the_wrong_shape_with_a_right_digest_is_not_used(
        bundle_dir: Path, cache: ValidationCache, body: bytes) -> None:
    reference = load_bundle(bundle_dir)
    load_bundle(bundle_dir, validation_cache=cache)
    for entry in entries(cache):
        rewrite(entry, body)
    bundle = load_bundle(bundle_dir, validation_cache=cache)
    assert not from_cache(bundle)
    assert_same_bundle(bundle, reference)


@pytest.mark.parametrize("how", ["entry-writable", "directory-writable", "linked"])
def test_an_entry_others_could_write_or_a_link_is_not_used(
        bundle_dir: Path, cache: ValidationCache, tmp_path: Path, how: str) -> None:
    load_bundle(bundle_dir, validation_cache=cache)
    directory = ScopeCache.beside(cache).directory
    for entry in entries(cache):
        if how == "entry-writable":
            entry.chmod(entry.stat().st_mode | 0o002)
        elif how == "linked":
            target = tmp_path / f"elsewhere-{entry.name}"
            entry.rename(target)
            entry.symlink_to(target)
    if how == "directory-writable":
        directory.chmod(directory.stat().st_mode | 0o020)
    assert not from_cache(load_bundle(bundle_dir, validation_cache=cache))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_an_entry_owned_by_another_user_is_not_used(
        bundle_dir: Path, cache: ValidationCache) -> None:
    load_bundle(bundle_dir, validation_cache=cache)
    for entry in entries(cache):
        os.chown(entry, 65534, 65534)
    assert not from_cache(load_bundle(bundle_dir, validation_cache=cache))


def test_a_node_that_disagrees_with_its_facts_is_refused_and_the_request_denied(
        bundle_dir: Path, cache: ValidationCache) -> None:
    """The documented limit: the PDP's own user can write an entry that is believed. A
    node made from the code must still be the policy the facts describe (kind, effect,
    annotations); one that is not raises, which denies the request that needed it."""
    code = split_policies((bundle_dir / "guards.cedar").read_text())[0].code
    facts = bundle_module.facts_of("policy0", node_from_code(code, _facts_for(code)), False)
    assert node_from_code(code, facts).id == "policy0"
    flipped = _replace(facts, effect="permit" if facts.effect == "forbid" else "forbid")
    for wrong in (flipped, _replace(facts, annotations={}), _replace(facts, is_template=True)):
        with pytest.raises(ValueError, match="not the one its cached facts describe"):
            node_from_code(code, wrong)


def _facts_for(code: str) -> cache_module.PolicyFacts:
    import cedarpy

    parsed = cedarpy.policies_to_pst(code)
    return bundle_module.facts_of("policy0", parsed.static_policies["policy0"], False)


def _replace(facts: cache_module.PolicyFacts, **changes: object) -> cache_module.PolicyFacts:
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


def test_facts_survive_the_round_trip_and_keys_bind_every_input(tmp_path: Path) -> None:
    import cedarpy

    text = (POLICIES / "datasets.cedar").read_text()
    parsed = cedarpy.policies_to_pst(text)
    facts = [bundle_module.facts_of(cid, node, False)
             for cid, node in parsed.static_policies.items()]
    cache = ScopeCache(tmp_path / "scopes")
    cache.put("a" * 64, facts)
    assert cache.get("a" * 64) == tuple(facts)
    assert cache.get("b" * 64) is None
    key = cache_module.facts_key
    assert len({key("s", "p", parser=b"v"), key("s!", "p", parser=b"v"),
                key("s", "p!", parser=b"v"), key("s", "p", parser=b"w"),
                key("sp", "", parser=b"v")}) == 5


def test_an_unwritable_state_directory_loads_without_the_cache(
        bundle_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = ValidationCache(blocker / "validated")  # mkdir fails (ENOTDIR)
    assert not from_cache(load_bundle(bundle_dir, validation_cache=cache))
    assert not from_cache(load_bundle(bundle_dir, validation_cache=cache))


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(case=cases())
def test_a_bundle_loaded_on_cached_facts_decides_as_cedar_and_equals_one_without(
        case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reference, cache, warm = cold_then_warm(case, Path(tmp))
        # Every policy of a file with an entry came from it (a bundle of one policy builds
        # its whole set at load, which makes its node).
        cached = {info.file for info in reference.policies.values()} if entries(cache) else set()
        assert from_cache(warm) == (cached if warm.index is not None else set())
    check_requests(case, warm)  # decided on nodes made as the requests need them
    if warm.index is not None:
        assert_same_bundle(warm, reference)
    else:
        assert warm.policies == reference.policies


def test_a_reload_beside_traffic_on_cached_facts_builds_the_whole_set_from_the_text(
        bundle_dir: Path, cache: ValidationCache) -> None:
    reference = load_bundle(bundle_dir)
    load_bundle(bundle_dir, validation_cache=cache)
    reloaded = load_bundle(bundle_dir, share_gil=True, validation_cache=cache)
    assert from_cache(reloaded)
    assert reloaded.full_set.is_built  # a reload builds it at once, from the spans' text
    assert reloaded.policy_set.to_pst() == reference.policy_set.to_pst()
    assert_same_bundle(reloaded, reference)


def test_a_slices_nodes_made_together_equal_those_made_alone(
        bundle_dir: Path, cache: ValidationCache) -> None:
    reference = load_bundle(bundle_dir)
    load_bundle(bundle_dir, validation_cache=cache)
    warm = load_bundle(bundle_dir, validation_cache=cache)
    assert warm.index is not None and isinstance(warm.index.policies, LazyNodes)
    some = sorted(pid for pid, info in warm.policies.items() if not info.is_template)[::2]
    warm.index.policies.make(some)
    assert {pid for pid, info in warm.policies.items() if info.lazy_node.is_made} == set(some)
    for pid in some:
        assert warm.policies[pid] == reference.policies[pid]
        assert warm.index.policies[pid] == reference.index.policies[pid]  # type: ignore[union-attr]


def test_a_node_the_joint_parse_does_not_give_as_described_is_left_to_be_refused_alone(
        bundle_dir: Path) -> None:
    codes = split_policies((bundle_dir / "datasets.cedar").read_text())
    alone = [node_from_code(span.code, _facts_for(span.code)) for span in codes]
    facts = [_replace(_facts_for(span.code), cedar_id=f"policy{i}") for i, span in enumerate(codes)]
    facts[1] = _replace(facts[1], effect="forbid" if facts[1].effect == "permit" else "permit")
    nodes = [LazyNode.from_code(span.code, f) for span, f in zip(codes, facts, strict=True)]
    make_together(node.renamed(f"x{i}") for i, node in enumerate(nodes))
    assert [node.is_made for node in nodes] == [i != 1 for i in range(len(nodes))]
    for i, node in enumerate(nodes):
        if i == 1:
            with pytest.raises(ValueError, match="not the one its cached facts describe"):
                node.get()
        else:
            assert node.get() == dataclasses.replace(alone[i], id=f"policy{i}")
