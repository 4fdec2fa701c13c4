"""Load a policy bundle directory into parsed Cedar handles, or refuse it whole.

A bundle is a directory (usually a git checkout)::

    schema.cedarschema     Cedar schema (or schema.cedarschema.json, JSON syntax)
    *.cedar                policies; each carries @id("...") and @reason("...")
    entities.json          static entities (optional)
    tests/*.yaml           test suites for `pdp test` (not loaded here)

Loading parses everything once (``PolicySet``, ``Schema``, ``Entities``
handles), validates every policy strictly against the schema merged with the
PDP's own ``Pdp`` namespace, and gathers *every* problem before refusing, as
Cerbos's ``ErrorSet`` does, so an author fixes them in one pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cedarpy
from cedarpy import pst

from pdp.engine.actions import ActionCatalog, build_action_catalog
from pdp.engine.entity_cache import PrincipalEntityCache
from pdp.engine.pdp_schema import PDP_NAMESPACE, WORKLOAD_TYPE, pdp_schema_cedar, pdp_schema_json

SCHEMA_FILES = ("schema.cedarschema", "schema.cedarschema.json")
ENTITIES_FILE = "entities.json"
_ID_PATTERN = re.compile(r"[A-Za-z0-9._:/-]{1,128}")


@dataclass(frozen=True, slots=True)
class BundleProblem:
    """One reason a bundle was refused: which file, which policy, what is wrong."""

    file: str
    problem: str
    policy: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: policy {self.policy!r}" if self.policy else self.file
        return f"{where}: {self.problem}"


class BundleInvalid(Exception):
    """The bundle was refused; ``problems`` lists every problem found."""

    def __init__(self, directory: Path, problems: list[BundleProblem]) -> None:
        self.directory = directory
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"bundle {directory} is invalid ({len(problems)} problems):\n{lines}")


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
    node: pst.Template
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A loaded, validated bundle: everything evaluation needs, parsed once."""

    directory: Path
    version: BundleVersion
    schema: cedarpy.Schema
    schema_text: str
    policy_set: cedarpy.PolicySet
    policies: Mapping[str, PolicyInfo]
    entities: cedarpy.Entities
    # Parents that entities.json gives workloads, merged into the principal per request.
    workload_parents: Mapping[str, tuple[dict[str, str], ...]]
    # Every (type, id) defined statically: a request may not redefine one.
    static_uids: frozenset[tuple[str, str]]
    # Their attributes as written in entities.json, to show values in explanations.
    static_attrs: Mapping[tuple[str, str], Mapping[str, Any]]
    actions: ActionCatalog
    files: Mapping[str, bytes]
    principal_entities: PrincipalEntityCache
    # Probe policy sets for explanations (pdp.engine.whynot), built on first use.
    probes: Any = field(default=None, compare=False, repr=False)
    # Policy sets with task grants linked (pdp.engine.grants), built on first use.
    linked: Any = field(default=None, compare=False, repr=False)
    # Static parents, transitively (pdp.engine.graph), and the scope index for slicing
    # (pdp.engine.slicing; None when the bundle is too small to be worth slicing).
    graph: Any = field(default=None, compare=False, repr=False)
    index: Any = field(default=None, compare=False, repr=False)
    # Per-request entity sets (pdp.engine.entity_slice) when entities.json is large.
    entity_slicer: Any = field(default=None, compare=False, repr=False)
    # Request shapes already checked against the schema (pdp.engine.request_shapes).
    shapes: Any = field(default=None, compare=False, repr=False)


def load_bundle(directory: Path | str) -> Bundle:
    """Load and validate the bundle at ``directory``; raise ``BundleInvalid`` listing all problems."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleInvalid(directory, [BundleProblem(str(directory), "not a directory")])
    problems: list[BundleProblem] = []
    files = _read_bundle_files(directory)

    schema, schema_text = _load_schema(files, problems)
    policies, templates, infos = _load_policies(files, problems)
    if schema is not None:
        _validate_policies(files, schema, infos, problems)
    entities, workload_parents, records = _load_entities(files, schema, problems)
    policy_set = _build_policy_set(policies, templates, problems)
    if problems or schema is None or entities is None or policy_set is None:
        raise BundleInvalid(directory, problems)

    from pdp.engine.grants import LinkedSets
    from pdp.engine.graph import EntityGraph
    from pdp.engine.slicing import SLICE_MIN_POLICIES, PolicyIndex
    from pdp.engine.whynot import ProbeCache

    statics = {pid: info.node for pid, info in infos.items() if not info.is_template}
    statics = {pid: dataclasses.replace(node, id=pid) for pid, node in statics.items()}
    graph = EntityGraph(_parent_graph(records, workload_parents))
    slicer = _entity_slicer(records, graph, schema, infos)
    # The action entities, from the schema alone (small whatever entities.json holds).
    actions_only = cedarpy.Entities.from_json_str("[]", schema)
    if slicer is not None:
        # Requests get their own entity sets: the full Rust copy of entities.json (already
        # validated above) is not kept.
        entities = actions_only
    from pdp.engine.request_shapes import RequestShapes

    return Bundle(
        shapes=RequestShapes(),
        probes=ProbeCache(),
        linked=LinkedSets(),
        graph=graph,
        entity_slicer=slicer,
        index=PolicyIndex(statics) if len(statics) >= SLICE_MIN_POLICIES else None,
        directory=directory.resolve(),
        version=compute_version(directory, files),
        schema=schema,
        schema_text=schema_text,
        policy_set=policy_set,
        policies=infos,
        entities=entities,
        workload_parents=workload_parents,
        static_uids=frozenset(records),
        static_attrs={uid: r.get("attrs") or {} for uid, r in records.items()},
        actions=build_action_catalog(schema, actions_only),
        files=files,
        principal_entities=PrincipalEntityCache(entities),
    )


def _read_bundle_files(directory: Path) -> dict[str, bytes]:
    """Every file that defines the bundle, by path relative to it (hidden files skipped)."""
    wanted: list[Path] = [p for p in directory.iterdir() if p.is_file() and (
        p.suffix == ".cedar" or p.name in SCHEMA_FILES or p.name == ENTITIES_FILE)]
    tests = directory / "tests"
    if tests.is_dir():
        wanted += [p for p in tests.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")]
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(wanted) if not p.name.startswith(".")}


def _load_schema(files: Mapping[str, bytes],
                 problems: list[BundleProblem]) -> tuple[cedarpy.Schema | None, str]:
    present = [name for name in SCHEMA_FILES if name in files]
    if len(present) != 1:
        problems.append(BundleProblem(
            "schema.cedarschema",
            "missing schema" if not present else "give one schema file, not both"))
        return None, ""
    name = present[0]
    text = _decode(files[name], name, problems)
    if text is None:
        return None, ""
    try:
        merged = _merge_schema(name, text)
        return cedarpy.Schema.from_str(merged), merged
    except (ValueError, TypeError) as e:
        problems.append(BundleProblem(name, f"schema does not parse: {e}"))
        return None, ""


def _merge_schema(name: str, text: str) -> str:
    """The bundle's schema plus the PDP's ``Pdp`` namespace, in Cedar syntax."""
    if name.endswith(".json"):
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("JSON schema must be an object of namespaces")
        if PDP_NAMESPACE in doc:
            raise ValueError("namespace Pdp is provided by the PDP; do not declare it")
        return str(cedarpy.Schema.from_json_str(json.dumps({**doc, **pdp_schema_json()})))
    if re.search(rf"\bnamespace\s+{PDP_NAMESPACE}\s*\{{", text):
        raise ValueError("namespace Pdp is provided by the PDP; do not declare it")
    return pdp_schema_cedar() + "\n" + text


def _load_policies(
    files: Mapping[str, bytes], problems: list[BundleProblem],
) -> tuple[dict[str, pst.Template], dict[str, pst.Template], dict[str, PolicyInfo]]:
    """Parse every ``*.cedar`` file; re-key each policy by its ``@id``."""
    static: dict[str, pst.Template] = {}
    templates: dict[str, pst.Template] = {}
    infos: dict[str, PolicyInfo] = {}
    cedar_files = [n for n in files if n.endswith(".cedar") and "/" not in n]
    if not cedar_files:
        problems.append(BundleProblem("*.cedar", "no policy files"))
    for name in cedar_files:
        text = _decode(files[name], name, problems)
        if text is None:
            continue
        try:
            parsed = cedarpy.policies_to_pst(text)
        except ValueError as e:
            problems.append(BundleProblem(name, f"does not parse: {e}"))
            continue
        for is_template, group in ((False, parsed.static_policies), (True, parsed.templates)):
            for cedar_id, node in group.items():
                info = _policy_info(name, cedar_id, node, is_template, infos, problems)
                if info is not None:
                    infos[info.id] = info
                    (templates if is_template else static)[info.id] = dataclasses.replace(
                        node, id=info.id)
    return static, templates, infos


def _policy_info(file: str, cedar_id: str, node: pst.Template, is_template: bool,
                 seen: Mapping[str, PolicyInfo],
                 problems: list[BundleProblem]) -> PolicyInfo | None:
    annotations = dict(node.annotations)
    policy_id = annotations.get("id")
    label = policy_id or f"#{cedar_id.removeprefix('policy')} (no @id)"
    ok = True
    if not policy_id:
        problems.append(BundleProblem(file, "missing @id(\"...\")", label))
        ok = False
    elif not _ID_PATTERN.fullmatch(policy_id):
        problems.append(BundleProblem(
            file, "@id must be 1-128 characters of A-Z a-z 0-9 . _ : / -", label))
        ok = False
    elif policy_id in seen:
        problems.append(BundleProblem(
            file, f"duplicate @id, already used in {seen[policy_id].file}", label))
        ok = False
    if not annotations.get("reason", "").strip():
        problems.append(BundleProblem(file, "missing @reason(\"...\")", label))
        ok = False
    if not ok or policy_id is None:
        return None
    return PolicyInfo(id=policy_id, effect=node.effect, file=file,
                      reason=annotations["reason"].strip(), advice=annotations.get("advice"),
                      is_template=is_template, node=node, annotations=annotations)


def _validate_policies(files: Mapping[str, bytes], schema: cedarpy.Schema,
                       infos: Mapping[str, PolicyInfo], problems: list[BundleProblem]) -> None:
    """Strict schema validation, file by file so each error names its file and policy."""
    for name in sorted({i.file for i in infos.values()}):
        result = cedarpy.validate_policies(files[name].decode(), schema)
        ids = result.id_annotations_by_policy_id
        for error in result.errors:
            problems.append(BundleProblem(name, error.error, ids.get(error.policy_id)))


def _load_entities(
    files: Mapping[str, bytes], schema: cedarpy.Schema | None, problems: list[BundleProblem],
) -> tuple[cedarpy.Entities | None, dict[str, tuple[dict[str, str], ...]],
           dict[tuple[str, str], dict[str, Any]]]:
    """Static entities (parsed once: every later use shares these records). Workloads are
    kept apart: their parents join the principal per request."""
    raw: Any = []
    if ENTITIES_FILE in files:
        try:
            raw = json.loads(files[ENTITIES_FILE])
        except (ValueError, UnicodeDecodeError) as e:
            problems.append(BundleProblem(ENTITIES_FILE, f"not JSON: {e}"))
            return None, {}, {}
    if not isinstance(raw, list) or not all(
            isinstance(e, dict) and isinstance(e.get("uid"), dict) for e in raw):
        problems.append(BundleProblem(
            ENTITIES_FILE, "must be a JSON list of Cedar entities with `uid`"))
        return None, {}, {}
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
        return None, workload_parents, {}
    try:
        entities = cedarpy.Entities.from_json_str(json.dumps(others), schema)
    except ValueError as e:
        problems.append(BundleProblem(ENTITIES_FILE, f"entities do not match the schema: {e}"))
        return None, workload_parents, {}
    records = {(str(e["uid"].get("type")), str(e["uid"].get("id"))): e for e in others}
    return entities, workload_parents, records


def _parent_graph(records: Mapping[tuple[str, str], dict[str, Any]],
                  workload_parents: Mapping[str, tuple[dict[str, str], ...]],
                  ) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """Every static entity's parents (workloads included), from entities.json."""
    graph = {uid: tuple((str(p["type"]), str(p["id"])) for p in e.get("parents", []))
             for uid, e in records.items()}
    for wid, parents in workload_parents.items():
        graph[("Pdp::Workload", wid)] = tuple((str(p["type"]), str(p["id"])) for p in parents)
    return graph


def _entity_slicer(records: Mapping[tuple[str, str], dict[str, Any]], graph: Any,
                   schema: cedarpy.Schema, infos: Mapping[str, PolicyInfo]) -> Any:
    """Per-request entity sets, for bundles whose entities.json is large."""
    from pdp.engine.entity_slice import ENTITY_SLICE_MIN, EntitySlicer

    if len(records) < ENTITY_SLICE_MIN:
        return None
    from pdp.engine.render import entity_type_text

    literals = {(entity_type_text(u.type), u.id)
                for info in infos.values() for u in pst.entity_uids(info.node.clauses)}
    return EntitySlicer(records, graph, schema, literals)


def _build_policy_set(static: dict[str, pst.Template], templates: dict[str, pst.Template],
                      problems: list[BundleProblem]) -> cedarpy.PolicySet | None:
    if problems:
        return None
    try:
        return cedarpy.PolicySet.from_pst(
            pst.PolicySet(templates=templates, static_policies=static, template_links=()))
    except ValueError as e:
        problems.append(BundleProblem("*.cedar", f"policy set does not build: {e}"))
        return None


def _decode(data: bytes, name: str, problems: list[BundleProblem]) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(BundleProblem(name, "not UTF-8 text"))
        return None


def compute_version(directory: Path, files: Mapping[str, bytes]) -> BundleVersion:
    """SHA-256 over the bundle's files (names and contents), plus the git commit if any."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
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
