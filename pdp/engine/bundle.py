"""Load a policy bundle directory into parsed Cedar handles, or refuse it whole.

A bundle is a directory (usually a git checkout)::

    schema.cedarschema     Cedar schema (or schema.cedarschema.json, JSON syntax)
    *.cedar                policies; each should carry @id("...") and @reason("...")
    entities.json          static entities (optional)
    tests/*.yaml           test suites for `pdp test` (not loaded here)

Loading parses everything once (``PolicySet``, ``Schema``, ``Entities``
handles), validates every policy strictly against the schema merged with the
PDP's own ``Pdp`` namespace (scoped so that the admin actions do not leak into
the bundle's own policies: ``pdp.engine.validation``), and gathers *every*
problem before refusing, as Cerbos's ``ErrorSet`` does, so an author fixes them
in one pass. Any bundle Cedar validates against its own schema loads; a policy
without ``@id`` is named by its file and position, and what an author should
still fix is kept in ``Bundle.warnings``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import cedarpy
from cedarpy import pst

from pdp.engine.actions import ActionCatalog, build_action_catalog
from pdp.engine.answer_memo import AnswerMemo
from pdp.engine.cache_budget import ANSWER_MEMO_BYTES, PROBE_POLICIES
from pdp.engine.entity_cache import PrincipalEntityCache
from pdp.engine.entity_records import EntityRecords
from pdp.engine.entity_slice import ENTITY_SLICE_MIN, EntitySlicer
from pdp.engine.graph import EntityGraph
from pdp.engine.ids import CONTROL_CHARACTERS
from pdp.engine.json_load import load_json
from pdp.engine.lazy_nodes import LazyNode, LazyNodes
from pdp.engine.lazy_set import LazyPolicySet
from pdp.engine.literals import condition_literals
from pdp.engine.memo import Memo
from pdp.engine.pdp_schema import PDP_NAMESPACE, WORKLOAD_TYPE, pdp_schema_cedar, pdp_schema_json
from pdp.engine.policy_parse import parse_ahead, parse_in_chunks, policy_set_in_chunks
from pdp.engine.policy_source import PolicySpan, split_policies, split_with_rest
from pdp.engine.problems import BundleInvalid, BundleProblem
from pdp.engine.render import entity_type_text
from pdp.engine.request_shapes import RequestShapes
from pdp.engine.scope_cache import PolicyFacts, ScopeCache
from pdp.engine.slicing import SLICE_MIN_POLICIES, PolicyIndex, scope_of
from pdp.engine.validation import FileFindings, check_full, generated_id, validate_file
from pdp.engine.validation_cache import ValidationCache

SCHEMA_FILES = ("schema.cedarschema", "schema.cedarschema.json")
ENTITIES_FILE = "entities.json"
# Cedar takes any string as an @id; decisions and the log carry it, so it is bounded
# and printable (pdp.engine.ids).
MAX_POLICY_ID = 128
# How many linked policy sets (task grants) a bundle keeps (probe sets are bounded by
# pdp.engine.cache_budget); each is a pure function of its key, so an evicted one is rebuilt.
LINKED_SETS = 64


@dataclass(frozen=True, slots=True)
class BundleVersion:
    """Which policies decided: the git commit (if any) and a hash of the files."""

    sha256: str
    commit: str | None = None
    dirty: bool = False

    @property
    def label(self) -> str:
        base = f"{self.commit[:12]}+" if self.commit else ""
        return f"{base}{self.sha256[:12]}{'-dirty' if self.dirty else ''}"

    def as_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "sha256": self.sha256, "dirty": self.dirty,
                "label": self.label}


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One policy or template of the bundle, with the annotations people read."""

    id: str
    effect: Literal["permit", "forbid"]
    file: str
    reason: str
    advice: str | None
    is_template: bool
    # Its node, made on first use when the load took its facts from the scope cache
    # (pdp.engine.lazy_nodes); read it as ``node``.
    lazy_node: LazyNode = field(repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)
    line: int | None = None  # where the policy starts in ``file``

    @property
    def node(self) -> pst.Template:
        """The policy as Cedar parsed it, numbered ``policy<N>`` by its place in ``file``."""
        return self.lazy_node.get()


@dataclass(frozen=True, slots=True)
class Bundle:
    """A loaded, validated bundle: everything evaluation needs, parsed once."""

    directory: Path
    version: BundleVersion
    schema: cedarpy.Schema
    schema_text: str
    policies: Mapping[str, PolicyInfo]
    entities: cedarpy.Entities
    # Parents that entities.json gives workloads, merged into the principal per request.
    workload_parents: Mapping[str, tuple[dict[str, str], ...]]
    # Every (type, id) defined statically: a request may not redefine one (the
    # keys of pdp.engine.entity_records.EntityRecords: read without writing to them).
    static_uids: Collection[tuple[str, str]]
    # Their attributes as written in entities.json, to show values in explanations.
    static_attrs: Mapping[tuple[str, str], Mapping[str, Any]]
    actions: ActionCatalog
    files: Mapping[str, bytes]
    principal_entities: PrincipalEntityCache
    # Static parents, transitively (pdp.engine.graph), and the scope index for slicing
    # (pdp.engine.slicing; None when the bundle is too small to be worth slicing).
    graph: EntityGraph = field(compare=False, repr=False)
    index: PolicyIndex | None = field(compare=False, repr=False)
    # Every policy in one Cedar set: read through `policy_set` (built on first use when
    # the index slices; pdp.engine.lazy_set).
    full_set: LazyPolicySet = field(compare=False, repr=False)
    # Per-request entity sets (pdp.engine.entity_slice) when entities.json is large.
    entity_slicer: EntitySlicer | None = field(compare=False, repr=False)
    # Request shapes already checked against the schema (pdp.engine.request_shapes).
    shapes: RequestShapes = field(default_factory=RequestShapes, compare=False, repr=False)
    # Probe policy sets for explanations, by the policies they diagnose. Filled by
    # pdp.engine.whynot, which imports this module (so the bundle holds a plain Memo).
    probes: Memo[tuple[str, ...], cedarpy.PolicySet] = field(
        default_factory=lambda: Memo(PROBE_POLICIES, weigh=lambda ids, _: len(ids) + 1),
        compare=False, repr=False)
    # Policy sets with task grants linked, by what is linked; filled by pdp.engine.grants.
    linked: Memo[frozenset[tuple[str, ...]], cedarpy.PolicySet] = field(
        default_factory=lambda: Memo(LINKED_SETS), compare=False, repr=False)
    # Cedar's answers to the questions already asked of this bundle (pdp.engine.answer_memo).
    answers: AnswerMemo = field(default_factory=AnswerMemo, compare=False, repr=False)
    # What `pdp validate` warns about without refusing (pdp.engine.validation).
    warnings: tuple[BundleProblem, ...] = field(default=(), compare=False)
    # The ``Reason`` of each policy that has determined a decision, by policy id, built
    # once: filled by pdp.decision.outcomes (which this module does not import, so the
    # values are typed ``Any``). A pure function of ``policies``; at most one per policy.
    reasons: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def policy_set(self) -> cedarpy.PolicySet:
        """Every policy and template of the bundle in one Cedar set, under their ids.

        A bundle without an index (one policy) decides on it, so its load builds it; one
        with an index decides on slices, and a start leaves this set to its first use
        (:mod:`pdp.engine.lazy_set`). A reload builds it as before, a chunk at a time
        beside the serving loop, so that no later use holds the GIL to build it.
        """
        return self.full_set.get()


def load_bundle(directory: Path | str, *, share_gil: bool = False,
                validation_cache: ValidationCache | None = None,
                answer_memo_bytes: int = ANSWER_MEMO_BYTES) -> Bundle:
    """Load and validate the bundle at ``directory``; raise ``BundleInvalid`` listing all
    problems. ``answer_memo_bytes`` bounds the memo of Cedar's answers the bundle starts
    with (0: none, every decision asks Cedar; :mod:`pdp.engine.answer_memo`).

    What Cedar does with the GIL released (``release_gil``) runs in helper threads,
    beside what needs the GIL in this one: Cedar's validation, its parse of the policies
    (a few hundred per call, ahead of this thread:
    :func:`pdp.engine.policy_parse.parse_ahead`), its check of the entities against the
    schema and the build of the policy set (at start only when there is no index to
    slice it: see :attr:`Bundle.policy_set`). With a core to spare they add no time of
    their own. Turning the parse into nodes (``PolicySet.to_pst``) and the indexes over
    them hold the GIL.

    ``share_gil``: for a reload beside a serving event loop, which must not wait long
    for the GIL. The policies are then parsed a few dozen at a time
    (:mod:`pdp.engine.policy_parse`) and the policy set is built from Cedar's JSON form
    chunk by chunk (:func:`pdp.engine.policy_parse.policy_set_in_chunks`) rather than
    by ``PolicySet.from_pst``, which reads every node with the GIL held: more work in
    all, but the GIL changes hands every few milliseconds.

    ``validation_cache``: a file whose text and schema Cedar's validator already passed
    (:mod:`pdp.engine.validation_cache`) is not validated again, and a file it passes
    now is recorded there. Without it (``pdp validate``) every file is validated. Beside it
    (:meth:`pdp.engine.scope_cache.ScopeCache.beside`), each file's facts: a file whose
    facts are cached is not turned into nodes at load (each policy's node is made on
    first use), and the facts of a file turned into nodes now are recorded there.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleInvalid(directory, [BundleProblem(str(directory), "not a directory")])
    problems: list[BundleProblem] = []
    files = _read_bundle_files(directory)

    warnings: list[BundleProblem] = []
    schema, schema_text, user_schema = _load_schema(files, problems, warnings)
    texts = _policy_texts(files, problems)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pdp-bundle-load") as helpers:
        # Validation first, the longest; the other helper parses ahead of this thread.
        verdicts = ({} if validation_cache is None else
                    {name: validation_cache.key(schema_text, text) for name, text in texts.items()})
        checked = ({name: None if _cached_pass(validation_cache, verdicts.get(name))
                    else helpers.submit(check_full, text, schema) for name, text in texts.items()}
                   if schema is not None and user_schema is not None else {})
        splits = {name: split_with_rest(text) for name, text in texts.items()}
        scope_cache = None if validation_cache is None else ScopeCache.beside(validation_cache)
        facts_keys = ({} if scope_cache is None else
                      {name: scope_cache.key(schema_text, text) for name, text in texts.items()})
        cached = {name: found for name, key in facts_keys.items()
                  if (found := _cached_facts(scope_cache, key, splits[name])) is not None}
        parsing = ({} if share_gil else {name: parse_ahead(text, *splits[name], helpers)
                                         for name, text in texts.items() if name not in cached})
        # Reported after the policies' problems, as they are found there. At start Cedar
        # checks them beside the parse; a reload checks them after validation, in this
        # thread, as the helpers already run beside it and the serving event loop.
        entity_problems: list[BundleProblem] = []
        records, workload_parents, entity_check = _read_entities(
            files, schema, entity_problems, None if share_gil else helpers)
        policies, templates, infos, sources, facts = _load_policies(
            texts, splits, problems, warnings, parsing=parsing, cached=cached)
        building: Future[cedarpy.PolicySet] | None
        if not share_gil and len(policies) >= SLICE_MIN_POLICIES:
            building = None  # decided on slices: the whole set waits for its first use
        elif share_gil and (chunkable := _chunkable(sources, infos, facts)) is not None:
            building = helpers.submit(policy_set_in_chunks, *chunkable)
        else:
            building = helpers.submit(_build_policy_set, policies, templates)
        if schema is not None and user_schema is not None:
            _validate_policies(sources, checked, schema, user_schema, problems, warnings)
        entities = _checked_entities(entity_check, entity_problems)
        problems += entity_problems
        if problems or schema is None or entities is None:
            raise BundleInvalid(directory, problems)
        if validation_cache is not None:
            _record_passes(validation_cache, verdicts, checked)
        if scope_cache is not None:
            _record_facts(scope_cache, facts_keys, sources, infos, facts, cached)
        # `policies` are the static ones, each node already named by its @id.
        graph = EntityGraph(partial(_parents, records, workload_parents))
        slicer = _entity_slicer(records, graph, schema, facts.values())
        index = (PolicyIndex(policies, {pid: facts[pid].scope for pid in policies})
                 if len(policies) >= SLICE_MIN_POLICIES else None)
        if building is None:  # decided on slices: see Bundle.policy_set
            assert index is not None
            full_set = LazyPolicySet(partial(_build_policy_set, index.policies, templates))
        else:
            try:
                full_set = LazyPolicySet.of(building.result())
            except ValueError as e:
                raise BundleInvalid(directory, [BundleProblem(
                    "*.cedar", f"policy set does not build: {e}")]) from e
    # The action entities, from the schema alone (small whatever entities.json holds).
    actions_only = cedarpy.Entities.from_json_str("[]", schema, release_gil=True)
    if slicer is not None:
        # Requests get their own entity sets: the full Rust copy of entities.json (already
        # validated above) is not kept.
        entities = actions_only
    return Bundle(
        graph=graph,
        entity_slicer=slicer,
        index=index,
        directory=directory.resolve(),
        version=compute_version(directory, files),
        schema=schema,
        schema_text=schema_text,
        full_set=full_set,
        policies=infos,
        entities=entities,
        workload_parents=workload_parents,
        static_uids=records,
        static_attrs=records.attrs(),
        actions=build_action_catalog(schema, actions_only),
        files=files,
        principal_entities=PrincipalEntityCache(entities),
        answers=AnswerMemo(answer_memo_bytes),
        warnings=tuple(warnings),
    )


def _bundle_paths(directory: Path) -> dict[str, Path]:
    """Every file that defines the bundle, by path relative to it (hidden files skipped)."""
    wanted: list[Path] = [p for p in directory.iterdir() if p.is_file() and (
        p.suffix == ".cedar" or p.name in SCHEMA_FILES or p.name == ENTITIES_FILE)]
    tests = directory / "tests"
    if tests.is_dir():
        wanted += [p for p in tests.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")]
    return {p.relative_to(directory).as_posix(): p
            for p in sorted(wanted) if not p.name.startswith(".")}


def _read_bundle_files(directory: Path) -> dict[str, bytes]:
    """The contents of :func:`_bundle_paths`."""
    return {name: path.read_bytes() for name, path in _bundle_paths(directory).items()}


def _load_schema(files: Mapping[str, bytes], problems: list[BundleProblem],
                 warnings: list[BundleProblem],
                 ) -> tuple[cedarpy.Schema | None, str, cedarpy.Schema | None]:
    """The full schema (the bundle's plus the ``Pdp`` namespace), its text, and the
    schema the bundle's own policies are validated against (no admin actions)."""
    present = [name for name in SCHEMA_FILES if name in files]
    if len(present) != 1:
        problems.append(BundleProblem(
            "schema.cedarschema",
            "missing schema" if not present else "give one schema file, not both"))
        return None, "", None
    name = present[0]
    text = _decode(files[name], name, problems)
    if text is None:
        return None, "", None
    without: set[str] = set()
    while True:
        try:
            merged = _merge_schema(name, text, admin_actions=True, without=frozenset(without))
            schema = cedarpy.Schema.from_str(merged, release_gil=True)
            user = cedarpy.Schema.from_str(
                _merge_schema(name, text, admin_actions=False, without=frozenset(without)),
                release_gil=True)
            break
        except (ValueError, TypeError) as e:
            shadowed = _SHADOWS.search(str(e))
            if shadowed is None or shadowed.group(1) in without:
                problems.append(BundleProblem(name, f"schema does not parse: {e}"))
                return None, "", None
            without.add(shadowed.group(1))
    warnings.extend(BundleProblem(name, _left_out(t)) for t in sorted(without))
    return schema, merged, user


# Cedar forbids a namespaced type to shadow a type of the empty namespace
# (https://github.com/cedar-policy/rfcs/blob/main/text/0070-disallow-empty-namespace-shadowing.md),
# so a bundle's top-level `Group` and the PDP's `Pdp::Group` cannot both be declared.
_SHADOWS = re.compile(rf"definition of `{PDP_NAMESPACE}::(\w+)` illegally shadows")


def _left_out(name: str) -> str:
    """What a bundle gives up when its top-level type ``name`` displaces ``Pdp::<name>``."""
    cost = ("so policies cannot name a Pdp::Group (a workload's groups stay readable as "
            "`principal.groups`)" if name == "Group" else
            "and with it the admin actions: admin requests are denied "
            "(request.unknown_action)")
    return (f"the bundle declares `{name}` outside any namespace, which Cedar does not let "
            f"{PDP_NAMESPACE}::{name} shadow: {PDP_NAMESPACE}::{name} is left out, {cost}")


def _merge_schema(name: str, text: str, *, admin_actions: bool, without: frozenset[str]) -> str:
    """The bundle's schema plus the PDP's ``Pdp`` namespace, in Cedar syntax."""
    if name.endswith(".json"):
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("JSON schema must be an object of namespaces")
        if PDP_NAMESPACE in doc:
            raise ValueError("namespace Pdp is provided by the PDP; do not declare it")
        pdp = pdp_schema_json(admin_actions=admin_actions, without=without)
        return str(cedarpy.Schema.from_json_str(json.dumps({**doc, **pdp})))
    if re.search(rf"\bnamespace\s+{PDP_NAMESPACE}\s*\{{", text):
        raise ValueError("namespace Pdp is provided by the PDP; do not declare it")
    return pdp_schema_cedar(admin_actions=admin_actions, without=without) + "\n" + text


@dataclass(frozen=True, slots=True)
class _PolicyFile:
    """One ``*.cedar`` file that Cedar parsed, and where each of its policies starts."""

    name: str
    text: str
    spans: tuple[PolicySpan, ...]
    # Policies Cedar parses that cedarpy cannot turn into nodes (see _unconvertible).
    unconvertible: tuple[BundleProblem, ...] = ()


def _policy_texts(files: Mapping[str, bytes], problems: list[BundleProblem]) -> dict[str, str]:
    """The text of every ``*.cedar`` file at the top of the bundle that is UTF-8."""
    names = [n for n in files if n.endswith(".cedar") and "/" not in n]
    if not names:
        problems.append(BundleProblem("*.cedar", "no policy files"))
    texts = {name: _decode(files[name], name, problems) for name in names}
    return {name: text for name, text in texts.items() if text is not None}


def _load_policies(
    texts: Mapping[str, str], splits: Mapping[str, tuple[list[PolicySpan], str]],
    problems: list[BundleProblem], warnings: list[BundleProblem], *,
    parsing: Mapping[str, Callable[[], pst.PolicySet]],
    cached: Mapping[str, tuple[PolicyFacts, ...]],
) -> tuple[LazyNodes, LazyNodes, dict[str, PolicyInfo], list[_PolicyFile],
           dict[str, PolicyFacts]]:
    """Turn every ``*.cedar`` file into nodes; re-key each policy by its ``@id`` (or its
    position). ``splits``: :func:`split_with_rest` of each. Also gives each policy's
    facts (:class:`pdp.engine.scope_cache.PolicyFacts`) by its id.

    ``parsing``: each file's nodes, parsed ahead in a helper thread (a start:
    :func:`pdp.engine.policy_parse.parse_ahead`). Without it (a reload) the nodes come a
    few dozen policies per call to Cedar, so that other threads get the GIL between them.
    ``cached``: the files whose facts the scope cache holds (checked against their
    split by :func:`_cached_facts`): not parsed here, their nodes made on first use."""
    static: dict[str, pst.Template | LazyNode] = {}
    templates: dict[str, pst.Template | LazyNode] = {}
    infos: dict[str, PolicyInfo] = {}
    facts: dict[str, PolicyFacts] = {}
    sources: list[_PolicyFile] = []
    for name, text in texts.items():
        spans, rest = splits[name]
        if name in cached:
            source = _PolicyFile(name, text, tuple(spans))
            found = [(f, LazyNode.from_code(spans[i].code, f))
                     for i, f in enumerate(cached[name])]
        else:
            try:
                # One parse: the nodes come from Cedar's parser, so a file they come from
                # parses (a second parse with PolicySet.from_str cost 1.4 s more at 10,000
                # policies).
                parsed = parsing[name]() if parsing else parse_in_chunks(text, spans, rest)
            except ValueError as e:
                failed = _parse_file(name, text, problems)  # Cedar's own parse says what failed
                if failed is not None:
                    # Cedar parsed the file; only cedarpy's conversion to nodes refused it.
                    sources.append(dataclasses.replace(failed,
                                                       unconvertible=_unconvertible(failed, e)))
                continue
            count = len(parsed.static_policies) + len(parsed.templates)
            # Splitting agrees with Cedar on every file Cedar parses; if it ever did not, the
            # policies would be named without lines rather than at wrong ones.
            source = _PolicyFile(name, text, tuple(spans) if len(spans) == count else ())
            found = [(facts_of(cedar_id, node, is_template), LazyNode.of(node))
                     for is_template, group in ((False, parsed.static_policies),
                                                (True, parsed.templates))
                     for cedar_id, node in group.items()]
        sources.append(source)
        for policy, node in found:
            info = _policy_info(source, policy, node, infos, problems, warnings)
            if info is not None:
                infos[info.id] = info
                facts[info.id] = policy
                (templates if policy.is_template else static)[info.id] = node.renamed(info.id)
    return LazyNodes(static), LazyNodes(templates), infos, sources, facts


def facts_of(cedar_id: str, node: pst.Template, is_template: bool) -> PolicyFacts:
    """What a load needs of a parsed policy (:class:`pdp.engine.scope_cache.PolicyFacts`)."""
    return PolicyFacts(
        cedar_id=cedar_id, is_template=is_template, effect=node.effect,
        annotations=node.annotations, scope=scope_of(node),
        literals=frozenset((entity_type_text(u.type), u.id)
                           for u in condition_literals(node.clauses)))


def _cached_facts(cache: ScopeCache | None, key: str,
                  split: tuple[list[PolicySpan], str]) -> tuple[PolicyFacts, ...] | None:
    """The cached facts of a file, if they describe its split: one per policy, in order,
    numbered as Cedar numbers them, and no code after the last (else None: parse it)."""
    facts = None if cache is None else cache.get(key)
    spans, rest = split
    if (facts is None or not spans or rest.strip()
            or [f.cedar_id for f in facts] != [f"policy{i}" for i in range(len(spans))]):
        return None
    return facts


def _record_facts(cache: ScopeCache, keys: Mapping[str, str], sources: list[_PolicyFile],
                  infos: Mapping[str, PolicyInfo], facts: Mapping[str, PolicyFacts],
                  cached: Mapping[str, object]) -> None:
    """Record the facts of each file turned into nodes in this load, in file order, where
    every policy of it is known by its span (so that one can be made from its code)."""
    by_file: dict[str, list[PolicyFacts]] = {}
    for pid, info in infos.items():
        by_file.setdefault(info.file, []).append(facts[pid])
    for source in sources:
        found = by_file.get(source.name, [])
        if (source.name in cached or not source.spans or source.unconvertible
                or len(found) != len(source.spans)):
            continue
        cache.put(keys[source.name],
                  sorted(found, key=lambda f: int(f.cedar_id.removeprefix("policy"))))


def _parse_file(name: str, text: str, problems: list[BundleProblem]) -> _PolicyFile | None:
    """Cedar's own parse of the file; when it fails, each failing policy by its line."""
    spans = tuple(split_policies(text))
    try:
        parsed = cedarpy.PolicySet.from_str(text)
        count = len(parsed) + len(parsed.templates())
    except ValueError as e:
        failing = [BundleProblem(name, f"does not parse: {err}", line=span.line)
                   for span in spans if (err := _parse_error(span.code))]
        problems.extend(failing or [BundleProblem(name, f"does not parse: {e}")])
        return None
    # Splitting agrees with Cedar on every file Cedar parses; if it ever did not, the
    # policies would be named without lines rather than at wrong ones.
    return _PolicyFile(name, text, spans if len(spans) == count else ())


def _parse_error(code: str) -> str | None:
    try:
        cedarpy.PolicySet.from_str(code)
    except ValueError as e:
        return str(e)
    return None


def _unconvertible(source: _PolicyFile, error: ValueError) -> tuple[BundleProblem, ...]:
    """The policies cedarpy cannot turn into nodes (e.g. ``isMulticast`` given three
    arguments, which Cedar parses and its validator then refuses)."""
    found = []
    for i, span in enumerate(source.spans):
        try:
            cedarpy.policies_to_pst(span.code)
        except ValueError as e:
            found.append(BundleProblem(
                source.name, f"Cedar parses this policy but the PDP cannot load it ({e})",
                generated_id(source.name, i), span.line))
    return tuple(found) or (BundleProblem(
        source.name, f"Cedar parses this file but the PDP cannot load it ({error})"),)


def _policy_info(source: _PolicyFile, facts: PolicyFacts, node: LazyNode,
                 seen: Mapping[str, PolicyInfo], problems: list[BundleProblem],
                 warnings: list[BundleProblem]) -> PolicyInfo | None:
    """The policy's id (its ``@id``, else its file and position) and what people read."""
    annotations = dict(facts.annotations)
    index = int(facts.cedar_id.removeprefix("policy"))
    span = source.spans[index] if index < len(source.spans) else None
    line = span.line if span else None
    policy_id = annotations.get("id", generated_id(source.name, index))
    problem = None
    if not 1 <= len(policy_id) <= MAX_POLICY_ID or CONTROL_CHARACTERS.search(policy_id):
        problem = f"@id must be 1-{MAX_POLICY_ID} characters without control characters"
    elif policy_id in seen:
        problem = f"duplicate @id, already used in {seen[policy_id].file}"
    if problem:
        problems.append(BundleProblem(source.name, problem, policy_id, line))
        return None
    if "id" not in annotations:
        warnings.append(BundleProblem(
            source.name, "no @id: decisions and the log name it by its position, which "
                         "changes when a policy is added above it", policy_id, line))
    reason = annotations.get("reason", "").strip()
    if not reason:
        reason = f"The {facts.effect} policy at {source.name} line {line} (it has no @reason)"
        warnings.append(BundleProblem(
            source.name, f"no @reason: explanations say {reason!r}", policy_id, line))
    return PolicyInfo(id=policy_id, effect=facts.effect, file=source.name, reason=reason,
                      advice=annotations.get("advice"), is_template=facts.is_template,
                      lazy_node=node, annotations=annotations, line=line)


def _validate_policies(sources: list[_PolicyFile],
                       checked: Mapping[str, Future[cedarpy.ValidationResult] | None],
                       schema: cedarpy.Schema, user_schema: cedarpy.Schema,
                       problems: list[BundleProblem], warnings: list[BundleProblem]) -> None:
    """Strict schema validation, scoped and said once per mistake (``pdp.engine.validation``);
    ``checked`` holds each file's validation against the full schema, under way, or None
    where the validation cache says it passed (a pass has no findings to report)."""
    for source in sources:
        full = checked[source.name]
        found = (FileFindings((), ()) if full is None else
                 validate_file(source.name, source.text, source.spans, user_schema, schema,
                               full=full.result()))
        problems.extend(found.problems)
        warnings.extend(found.warnings)
        # Where Cedar's validator refuses a policy, its message is the one to read; a
        # policy it accepts but the PDP cannot load is still refused, and named.
        refused = {p.line for p in found.problems}
        problems.extend(p for p in source.unconvertible
                        if p.line is None or p.line not in refused)


def _cached_pass(cache: ValidationCache | None, key: str | None) -> bool:
    """Whether ``cache`` holds a pass for ``key`` (never without a cache)."""
    return cache is not None and key is not None and cache.passed(key)


def _record_passes(cache: ValidationCache, keys: Mapping[str, str],
                   checked: Mapping[str, Future[cedarpy.ValidationResult] | None]) -> None:
    """Record in ``cache`` each file Cedar's validator passed in this load."""
    for name, full in checked.items():
        if full is not None and full.result().validation_passed:
            cache.record_pass(keys[name])


def _read_entities(
    files: Mapping[str, bytes], schema: cedarpy.Schema | None, problems: list[BundleProblem],
    helpers: ThreadPoolExecutor | None,
) -> tuple[EntityRecords, dict[str, tuple[dict[str, str], ...]],
           Callable[[], cedarpy.Entities] | None]:
    """Static entities (packed into :class:`pdp.engine.entity_records.EntityRecords`,
    which forked workers read without copying), and Cedar's check of them against
    ``schema``, which gives their handle or raises ``ValueError``: under way in
    ``helpers`` if given, else run when called (None when there is nothing to check: the
    file is refused, or the schema). Workloads are kept apart: their parents join the
    principal per request."""
    raw: Any = []
    if ENTITIES_FILE in files:
        try:
            raw = load_json(files[ENTITIES_FILE])
        except (ValueError, UnicodeDecodeError) as e:
            problems.append(BundleProblem(ENTITIES_FILE, f"not JSON: {e}"))
            return EntityRecords(()), {}, None
    if not isinstance(raw, list) or not all(
            isinstance(e, dict) and isinstance(e.get("uid"), dict) for e in raw):
        problems.append(BundleProblem(
            ENTITIES_FILE, "must be a JSON list of Cedar entities with `uid`"))
        return EntityRecords(()), {}, None
    workload_parents: dict[str, tuple[dict[str, str], ...]] = {}
    others = []
    for entity in raw:
        uid = entity["uid"]
        if uid.get("type") == WORKLOAD_TYPE:
            if entity.get("attrs"):
                problems.append(BundleProblem(
                    ENTITIES_FILE, f"workload {uid.get('id')!r}: attributes come from its "
                                   "credential; give only `parents`"))
            workload_parents[str(uid.get("id"))] = tuple(entity.get("parents", []))
        else:
            others.append(entity)
    if schema is None:
        return EntityRecords(()), workload_parents, None
    check = partial(cedarpy.Entities.from_json_str, json.dumps(others), schema,
                    release_gil=True)
    # Cedar checks them (GIL released) while this thread packs them.
    checked = check if helpers is None else helpers.submit(check).result
    records = EntityRecords(((str(e["uid"].get("type")), str(e["uid"].get("id"))), e)
                            for e in others)
    return records, workload_parents, checked


def _checked_entities(check: Callable[[], cedarpy.Entities] | None,
                      problems: list[BundleProblem]) -> cedarpy.Entities | None:
    """The entities of :func:`_read_entities`, once Cedar has checked them; None if it
    refused them or there were none to check."""
    if check is None:
        return None
    try:
        return check()
    except ValueError as e:
        problems.append(BundleProblem(ENTITIES_FILE, f"entities do not match the schema: {e}"))
        return None


def _parents(records: Mapping[tuple[str, str], dict[str, Any]],
             workload_parents: Mapping[str, tuple[dict[str, str], ...]],
             uid: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """A static entity's own parents from entities.json (a workload's too); none for an
    entity the bundle does not define."""
    if uid[0] == WORKLOAD_TYPE:
        given: Iterable[dict[str, Any]] = workload_parents.get(uid[1], ())
    else:
        record = records.get(uid)
        given = record.get("parents", []) if record is not None else ()
    return tuple((str(p["type"]), str(p["id"])) for p in given)


def _entity_slicer(records: Mapping[tuple[str, str], dict[str, Any]], graph: EntityGraph,
                   schema: cedarpy.Schema, facts: Iterable[PolicyFacts],
                   ) -> EntitySlicer | None:
    """Per-request entity sets, for bundles whose entities.json is large."""
    if len(records) < ENTITY_SLICE_MIN:
        return None
    named: set[tuple[str, str]] = set()
    for policy in facts:
        named |= policy.literals
    return EntitySlicer(records, graph, schema, named)


def _chunkable(sources: list[_PolicyFile], infos: Mapping[str, PolicyInfo],
               facts: Mapping[str, PolicyFacts],
               ) -> tuple[list[tuple[str, tuple[PolicySpan, ...]]],
                          dict[tuple[str, str], str]] | None:
    """What :func:`policy_set_in_chunks` needs to build the set of ``infos``, or None
    where a file's policies are not known by their spans (the split disagreed with
    Cedar, or cedarpy could not make nodes of a policy)."""
    split = {source.name for source in sources if source.spans and not source.unconvertible}
    if any(info.file not in split for info in infos.values()):
        return None
    return ([(source.name, source.spans) for source in sources if source.name in split],
            {(info.file, facts[pid].cedar_id): pid for pid, info in infos.items()})


def _build_policy_set(static: Mapping[str, pst.Template],
                      templates: Mapping[str, pst.Template]) -> cedarpy.PolicySet:
    """The policy set of the parsed nodes (raises ``ValueError``); Cedar builds it with the
    GIL released once it has read the nodes."""
    return cedarpy.PolicySet.from_pst(
        pst.PolicySet(templates=dict(templates), static_policies=dict(static),
                      template_links=()),
        release_gil=True)


def _decode(data: bytes, name: str, problems: list[BundleProblem]) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(BundleProblem(name, "not UTF-8 text"))
        return None


def compute_version(directory: Path, files: Mapping[str, bytes]) -> BundleVersion:
    """SHA-256 over the bundle's files (names and contents), plus the git commit if any."""
    return _version_of(directory, {name: hashlib.sha256(data).digest()
                                   for name, data in files.items()})


def version_on_disk(directory: Path) -> BundleVersion:
    """:func:`compute_version` of the files in ``directory`` now, each hashed as it is
    read in small blocks instead of held whole.

    For the check a ``pdp serve --workers N`` worker makes before it takes the bundle
    its supervisor loaded (:func:`pdp.engine.store.preload`): reading a 15 MB
    ``entities.json`` whole lands in heap pages the supervisor freed after its own
    load, and writing them copies them into the worker, which then holds them for
    good (measured: ~15 MB more per worker at 100,000 entities).
    """
    digests = {}
    for name, path in _bundle_paths(directory).items():
        with path.open("rb") as f:
            digests[name] = hashlib.file_digest(f, "sha256").digest()
    return _version_of(directory, digests)


def _version_of(directory: Path, digests: Mapping[str, bytes]) -> BundleVersion:
    digest = hashlib.sha256()
    for name in sorted(digests):
        digest.update(name.encode() + b"\0" + digests[name])
    commit, dirty = _git_state(directory)
    return BundleVersion(sha256=digest.hexdigest(), commit=commit, dirty=dirty)


def _git_state(directory: Path) -> tuple[str | None, bool]:
    try:
        head = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None, False
        status = subprocess.run(["git", "-C", str(directory), "status", "--porcelain", "--", "."],
                                capture_output=True, text=True, timeout=5)
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, False
