"""Hypothesis strategies for whole Cedar bundles and sequences of requests over them.

A generated ``Case`` is a bundle (schema, policies, templates, static
entities, written to a directory and loaded by the real loader) and a short
sequence of requests, so that every cache on the decision path (request
shapes, principal entities, entity slices, policy slices, linked grant sets)
is met cold and then warm. The schema has one or two namespaces, an entity
hierarchy, records, sets, optional attributes, every extension type
(``ipaddr``, ``decimal``, ``datetime``, ``duration``), an enumerated entity
type and an action group; actions may declare ``context.live`` and
``context.credential``. Policies are well typed by construction (the loader
validates strictly): permit/forbid, when/unless, ``has``, ``like``, ``in``,
``is``, extension methods, templates linked by grants and conditions that
raise errors (Long overflow, attributes of entities nobody defined). Every
bundle of ``SLICE_MIN_POLICIES`` or more policies is evaluated sliced; some are
padded with ``PADDING`` more (scope indexes with full buckets of every kind),
some past ``ENTITY_SLICE_MIN`` entities (per-request entity sets). Requests are mostly valid and sometimes off the schema (a missing or extra
context key, a value of the wrong type, an id outside the enumeration).

Cedar syntax: https://docs.cedarpolicy.com/policies/syntax-policy.html and
https://docs.cedarpolicy.com/schema/human-readable-schema.html
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from context.model import LiveSnapshot
from pdp.decision.model import ResourceRef
from pdp.engine.entity_slice import ENTITY_SLICE_MIN
from pdp.engine.grants import Grant
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10

# Policies added to a "big" bundle (its scope index then has full buckets).
PADDING = 64

# Attribute names say their kind (``ip1`` is an ipaddr): a name never has two types.
KINDS = {"s": "String", "n": "Long", "b": "Bool", "ip": "ipaddr", "dec": "decimal",
         "dt": "datetime", "dur": "duration", "ss": "Set<String>", "sip": "Set<ipaddr>",
         "rec": "Rec", "doc": "DOC"}
STRINGS = ["", "a", "ab", "b*", "10.6.6.6", "1.5", "prod", "x\ny"]
LONGS = [0, 1, 2, -1, 300, 9223372036854775807, -9223372036854775808]
IPS = ["10.0.0.1", "10.6.6.6", "127.0.0.1", "192.168.1.0/24", "::1"]
DECIMALS = ["0.0", "1.5", "9.5", "-2.25", "922337203685477.5807"]
DATETIMES = ["2026-01-05", "2031-01-01", "2026-01-05T10:00:00Z", "2026-01-05T11:00:00.000+0100"]
DURATIONS = ["1m", "2h", "1d2h", "-1s", "0ms"]
# Strings the schema's extension types refuse (a request carrying one is invalid).
BAD_EXTENSION_STRINGS = ["not-an-ip", "1.2.3", "yesterday", "3 hours"]
FOLDERS = ["f0", "f1", "f2", "f3"]
DOCS = ["d0", "d1", "d2", "d3"]
GROUPS = ["g0", "g1", "g2"]
USERS = ["u0", "u1"]
COLORS = ["red", "green", "blue"]
WORKLOADS = ["spiffe://example.org/w0", "spiffe://example.org/w1", "spiffe://other.org/w2",
             "client-3"]


@dataclass(frozen=True)
class Action:
    name: str
    principal: str  # "W" (Pdp::Workload) or "U" (the bundle's User type)
    resource: str  # "D" (Doc) or "C" (the enumerated Color type)
    context: tuple[tuple[str, bool], ...]  # (attribute, optional)
    live: bool = False
    credential: bool = False
    group: str | None = None


@dataclass
class Names:
    """Qualified Cedar names of the generated types."""

    ns: str
    color_ns: str

    def q(self, name: str) -> str:
        return f"{self.ns}::{name}" if self.ns else name

    @property
    def folder(self) -> str:
        return self.q("Folder")

    @property
    def doc(self) -> str:
        return self.q("Doc")

    @property
    def user(self) -> str:
        return self.q("User")

    @property
    def color(self) -> str:
        return f"{self.color_ns}::Color" if self.color_ns else self.q("Color")

    @property
    def action_type(self) -> str:
        return self.q("Action")

    def action(self, name: str) -> str:
        return f'{self.action_type}::"{name}"'

    def kind_type(self, kind: str) -> str:
        """The Cedar type of an attribute kind, as written in the schema."""
        return {"Rec": self.q("Rec"), "DOC": self.doc}.get(kind, kind)


@dataclass
class Request:
    action: str
    workload: VerifiedIdentity | None  # None: an asserted User principal
    user: tuple[str, dict[str, Any] | None] | None
    resource: ResourceRef
    context: dict[str, Any]
    live: LiveSnapshot
    grants: tuple[Grant, ...] = ()
    # Present the workload as a JWT-SVID through the verifier (and its cache) first.
    as_token: bool = False


@dataclass
class Case:
    names: Names
    schema: str
    policies: list[str]  # one text per policy, @id and @reason included
    effects: dict[str, str]  # @id -> permit | forbid
    templates: list[str]  # @ids of templates (linkable by grants)
    entities: list[dict[str, Any]]
    actions: dict[str, Action]
    template_actions: dict[str, str]  # template @id -> the action it is scoped to
    requests: list[Request] = field(default_factory=list)

    def __repr__(self) -> str:
        # The files as written and the requests, readable in a falsifying example.
        small = [e for e in self.entities if not e["uid"]["type"].endswith("Filler")]
        requests = "\n".join(
            f"  {r.action} by {r.workload.principal_id + ' ' + str(sorted(r.workload.groups)) if r.workload else r.user}"
            f" on {r.resource} context={r.context} grants={[(g.template, g.principal, g.resource_id) for g in r.grants]}"
            for r in self.requests)
        return (f"--- schema.cedarschema\n{self.schema}--- policies\n" + "\n".join(self.policies)
                + f"\n--- entities.json ({len(self.entities) - len(small)} fillers)\n"
                + json.dumps(small) + f"\n--- requests\n{requests}\n")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(repr(self))

    def files(self) -> dict[str, str]:
        half = len(self.policies) // 2
        return {"schema.cedarschema": self.schema,
                "a.cedar": "\n".join(self.policies[:half]),
                "b.cedar": "\n".join(self.policies[half:]),
                "entities.json": json.dumps(self.entities)}


def cedar_string(text: str) -> str:
    return json.dumps(text)


def literal(kind: str, value: Any, names: Names) -> str:
    """A Cedar expression for a JSON value of ``kind``."""
    if kind == "String":
        return cedar_string(value)
    if kind == "Long":
        return str(value) if value >= 0 else f"({value})"
    if kind == "Bool":
        return "true" if value else "false"
    if kind in ("ipaddr", "decimal", "datetime", "duration"):
        fn = {"ipaddr": "ip"}.get(kind, kind)
        return f"{fn}({cedar_string(value)})"
    if kind.startswith("Set<"):
        # Cedar's validator refuses an empty set literal (its element type is unknown).
        value = value or [{"Set<String>": "a", "Set<ipaddr>": "10.6.6.6"}[kind]]
        return "[" + ", ".join(literal(kind[4:-1], v, names) for v in value) + "]"
    raise ValueError(kind)


def json_value(draw: Any, kind: str, names: Names) -> Any:
    """A valid JSON value of ``kind`` as the PEP (or entities.json) sends it."""
    one = lambda xs: pick(draw, xs)  # noqa: E731
    match kind:
        case "String":
            return one(STRINGS)
        case "Long":
            return one(LONGS)
        case "Bool":
            return draw(st.booleans())
        case "ipaddr":
            return one(IPS)
        case "decimal":
            return one(DECIMALS)
        case "datetime":
            return one(DATETIMES)
        case "duration":
            return one(DURATIONS)
        case "Set<String>":
            return draw(st.lists(st.sampled_from(STRINGS), max_size=3))
        case "Set<ipaddr>":
            return draw(st.lists(st.sampled_from(IPS), max_size=3))
        case "Rec":
            rec: dict[str, Any] = {"n": one(LONGS)}
            if draw(st.booleans()):
                rec["s"] = one(STRINGS)
            if draw(st.booleans()):
                rec["ip"] = one(IPS)
            return rec
        case "DOC":
            return {"__entity": {"type": names.doc, "id": one(DOCS + ["d9"])}}
    raise ValueError(kind)


CONTEXT_ATTRS = ("s0", "n0", "b0", "ip0", "dec0", "dt0", "dur0", "ss0", "sip0", "rec0", "doc0",
                 "ip1", "s1")
DOC_ATTRS = ("s0", "n0", "b0", "ip0", "dec0", "dt0", "dur0", "ss0", "sip0", "rec0")


@st.composite
def _declared(draw: Any, pool: tuple[str, ...]) -> tuple[tuple[str, bool], ...]:
    """Up to four distinct attributes of ``pool``, each optional or required."""
    chosen = draw(st.lists(st.integers(0, len(pool) - 1), max_size=4))
    return tuple((pool[i], draw(st.booleans())) for i in dict.fromkeys(chosen))


_SAMPLERS: dict[tuple[Any, ...], Any] = {}


def pick(draw: Any, pool: Any) -> Any:
    """One element of ``pool`` (its strategy built once: building is most of a draw's cost)."""
    key = tuple(pool)
    if key not in _SAMPLERS:
        _SAMPLERS[key] = st.sampled_from(key)
    return draw(_SAMPLERS[key])


def rare(draw: Any, one_in: int) -> bool:
    """True about once in ``one_in`` draws (a middle value: hypothesis favours the ends)."""
    return draw(st.integers(0, one_in - 1)) == one_in // 2


def kind_of(attr: str) -> str:
    return KINDS[attr.rstrip("0123456789")]


# -- conditions -------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    """A typed expression a condition may read, and the ``has`` test that guards it."""

    expr: str
    kind: str
    guard: str | None = None


def _terms(names: Names, action: Action | None, doc_attrs: tuple[tuple[str, bool], ...],
           resource_kind: str, principal_kind: str | None) -> list[Term]:
    terms: list[Term] = []

    def attrs(base: str, declared: tuple[tuple[str, bool], ...]) -> None:
        for attr, optional in declared:
            kind = kind_of(attr)
            guard = f"{base} has {attr}" if optional else None
            if kind == "Rec":
                terms.append(Term(f"{base}.{attr}.n", "Long", guard))
                terms.append(Term(f"{base}.{attr}.s", "String",
                                  f"{guard + ' && ' if guard else ''}{base}.{attr} has s"))
                terms.append(Term(f"{base}.{attr}.ip", "ipaddr",
                                  f"{guard + ' && ' if guard else ''}{base}.{attr} has ip"))
            else:
                terms.append(Term(f"{base}.{attr}", kind, guard))

    if action is not None:
        attrs("context", action.context)
        if action.live:
            terms += [Term("context.live.risk_level", "Long"), Term("context.live.now", "datetime"),
                      Term("context.live.incident", "Bool"),
                      Term("context.live.business_hours", "Bool")]
        if action.credential:
            terms += [Term("context.credential.age_s", "Long"),
                      Term("context.credential.kind", "String")]
    if resource_kind == "D":
        attrs("resource", doc_attrs)
    if principal_kind == "W":
        terms += [Term("principal.path", "String"), Term("principal.trust_domain", "String"),
                  Term("principal.scopes", "Set<String>"), Term("principal.groups", "Set<String>")]
    elif principal_kind == "U":
        terms += [Term("principal.n0", "Long"), Term("principal.s0", "String", "principal has s0")]
    return terms


# Atoms by the kind they read; ``{e}`` is the term, ``{v}`` a literal of its kind,
# ``{folder}``/``{doc}``/... a uid. Filled only once chosen (fewer draws per example).
_ATOMS = {
    "String": ['{e} like "*a*"', '{e} like "b*"'],
    # The overflow raises an error whenever the value is positive.
    "Long": ["{e} < {v}", "{e} + 9223372036854775807 > 0", "{e} * 2 >= 4"],
    "Bool": ["{e}"],
    "ipaddr": ['{e}.isInRange(ip("10.0.0.0/8"))', "{e}.isLoopback()"],
    "decimal": ['{e}.lessThan(decimal("2.0"))', '{e}.greaterThanOrEqual(decimal("9.5"))'],
    "datetime": ['{e} > datetime("2030-01-01")', "{e} <= {v}",
                 '{e}.offset(duration("1d")) > datetime("2026-01-05")'],
    "duration": ['{e} > duration("1h")', "{e}.toMilliseconds() > 100"],
    "Set<String>": ['{e}.contains("a")', "{e}.isEmpty()", '{e}.containsAny(["a", "ab"])'],
    "Set<ipaddr>": ['{e}.contains(ip("10.6.6.6"))', "{e}.isEmpty()"],
    "DOC": ["{e} in {folder}", '{e} == {doc}', "{e} has ip0"],
}


def _fill(draw: Any, template: str, names: Names, term: Term | None = None) -> str:
    one = lambda xs: cedar_string(pick(draw, xs))  # noqa: E731
    parts: dict[str, str] = {}
    if term is not None:
        parts["e"] = term.expr
        if "{v}" in template:
            parts["v"] = literal(term.kind, json_value(draw, term.kind, names), names)
    for key, type_, pool in (("folder", names.folder, FOLDERS), ("doc", names.doc, DOCS),
                             ("color", names.color, COLORS), ("group", "Pdp::Group", GROUPS),
                             ("workload", "Pdp::Workload", WORKLOADS), ("user", names.user, USERS)):
        if "{" + key + "}" in template:
            parts[key] = f"{type_}::{one(pool)}"
    return template.format(**parts)


@st.composite
def _atom(draw: Any, names: Names, terms: list[Term], resource_kind: str,
          principal_kind: str | None) -> str:
    if not terms or draw(st.integers(0, 4)) == 0:
        scope_atoms = ["true", "false"]
        if resource_kind == "D":
            scope_atoms += ["resource in {folder}", f"resource is {names.doc}", "resource == {doc}"]
        if resource_kind == "C":
            scope_atoms.append("resource == {color}")
        if principal_kind == "W":
            scope_atoms.append("principal in {group}")
        if principal_kind == "U":
            scope_atoms.append("principal in {folder}")
        return _fill(draw, pick(draw, scope_atoms), names)
    term = pick(draw, terms)
    options = (["{e} == {v}", "{e} != {v}"] if term.kind != "DOC" else []) + _ATOMS[term.kind]
    atom = _fill(draw, pick(draw, options), names, term)
    return f"({term.guard} && {atom})" if term.guard else atom


@st.composite
def condition(draw: Any, names: Names, terms: list[Term], resource_kind: str,
              principal_kind: str | None, depth: int = 2) -> str:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(_atom(names, terms, resource_kind, principal_kind))
    sub = lambda: draw(condition(names, terms, resource_kind, principal_kind, depth - 1))  # noqa: E731
    form = draw(st.integers(0, 3))
    if form == 0:
        return f"!({sub()})"
    if form == 1:
        return f"({sub()} && {sub()})"
    if form == 2:
        return f"({sub()} || {sub()})"
    return f"(if {sub()} then {sub()} else {sub()})"


# -- schema, policies, entities ---------------------------------------------------------

@st.composite
def _actions(draw: Any, with_user: bool) -> dict[str, Action]:
    context_attrs = _declared(CONTEXT_ATTRS)
    shared = draw(context_attrs)
    live, credential = draw(st.booleans()), draw(st.booleans())
    actions = {
        "view": Action("view", "W", "D", draw(context_attrs), draw(st.booleans()),
                       draw(st.booleans())),
        # One action group: its members share principal, resource and context types.
        "edit": Action("edit", "W", "D", shared, live, credential, group="write"),
        "delete": Action("delete", "W", "D", shared, live, credential, group="write"),
        "paint": Action("paint", "W", "C", draw(context_attrs)),
    }
    if with_user:
        actions["ask"] = Action("ask", "U", "D", draw(context_attrs))
    return actions


def _schema(names: Names, actions: dict[str, Action], doc_attrs: tuple[tuple[str, bool], ...],
            with_user: bool, filler: bool) -> str:
    def record(declared: tuple[tuple[str, bool], ...], extra: list[str] = []) -> str:  # noqa: B006
        fields = [f'"{a}"{"?" if opt else ""}: {names.kind_type(kind_of(a))}'
                  for a, opt in declared]
        return "{ " + ", ".join(extra + fields) + " }"

    body = ["entity Folder in [Folder];",
            f"entity Doc in [Folder] = {record(doc_attrs)};",
            "type Rec = { n: Long, s?: String, ip?: ipaddr };",
            'action "write";']
    if with_user:
        body.append("entity User in [Folder] = { n0: Long, s0?: String };")
    if filler:
        body.append("entity Filler;")
    if not names.color_ns:
        body.append('entity Color enum ["red", "green", "blue"];')
    for a in actions.values():
        extra = (["live: Pdp::Live"] if a.live else []) + (
            ["credential: Pdp::Credential"] if a.credential else [])
        principal = "Pdp::Workload" if a.principal == "W" else "User"
        resource = "Doc" if a.resource == "D" else names.color
        group = f' in ["{a.group}"]' if a.group else ""
        body.append(f'action "{a.name}"{group} appliesTo {{ principal: [{principal}], '
                    f"resource: [{resource}], context: {record(a.context, extra)} }};")
    text = ("\n".join(body) if not names.ns
            else f"namespace {names.ns} {{\n  " + "\n  ".join(body) + "\n}")
    if names.color_ns:
        text += f'\nnamespace {names.color_ns} {{ entity Color enum ["red", "green", "blue"]; }}'
    return text + "\n"


@st.composite
def _scope(draw: Any, names: Names, actions: dict[str, Action], template: bool,
           ) -> tuple[str, str, str, Action | None, str, str | None]:
    """(principal, action, resource) scopes, the action whose types conditions use (None:
    any action, read nothing of the context), and the resource and principal kinds."""
    choice = pick(draw, ["one", "one", "group", "list", "open"] if not template
                                  else ["one"])
    if template:
        name = pick(draw, [a for a in actions if actions[a].principal == "W"])
    else:
        name = pick(draw, sorted(actions))
    action = actions[name]
    if choice == "group":
        action = actions["edit"]
        action_scope = f"action in {names.action('write')}"
    elif choice == "list":
        action = actions["edit"]
        action_scope = f"action in [{names.action('edit')}, {names.action('delete')}]"
    elif choice == "open":
        # Unconstrained action: the resource scope pins the type, conditions read no context.
        return ("principal", "action", f"resource is {names.doc}", None, "D", None)
    else:
        action_scope = f"action == {names.action(action.name)}"
    if template:
        principal = pick(draw, ["principal == ?principal", "principal in ?principal"])
        resource = pick(draw, ["resource == ?resource", "resource in ?resource"])
        return principal, action_scope, resource, action, action.resource, action.principal
    if action.principal == "W":
        principal = _fill(draw, pick(draw, (
            "principal", "principal == {workload}", "principal in {group}",
            "principal is Pdp::Workload", "principal is Pdp::Workload in {group}")), names)
    else:
        principal = _fill(draw, pick(draw, (
            "principal", "principal == {user}", "principal in {folder}",
            f"principal is {names.user}")), names)
    if action.resource == "D":
        resource = _fill(draw, pick(draw, (
            "resource", "resource == {doc}", "resource in {folder}", f"resource is {names.doc}",
            f"resource is {names.doc} in {{folder}}", "resource in {doc}")), names)
    else:
        resource = _fill(draw, pick(draw, (
            "resource", "resource == {color}", f"resource is {names.color}")), names)
    return principal, action_scope, resource, action, action.resource, action.principal


@st.composite
def _policy(draw: Any, names: Names, actions: dict[str, Action],
            doc_attrs: tuple[tuple[str, bool], ...], pid: str, template: bool = False,
            max_conditions: int = 2) -> tuple[str, str]:
    effect = pick(draw, ["permit", "forbid"])
    principal, action_scope, resource, action, resource_kind, principal_kind = draw(
        _scope(names, actions, template))
    terms = _terms(names, action, doc_attrs, resource_kind, principal_kind)
    clauses = [
        f"{pick(draw, ['when', 'unless'])} {{ "
        f"{draw(condition(names, terms, resource_kind, principal_kind))} }}"
        for _ in range(draw(st.integers(0, max_conditions)))]
    text = (f"@id({cedar_string(pid)}) @reason(\"Generated policy {pid}.\")\n"
            f"{effect} ({principal}, {action_scope}, {resource})"
            + "".join("\n  " + c for c in clauses) + ";")
    return effect, text


def _entities(draw: Any, names: Names, doc_attrs: tuple[tuple[str, bool], ...],
              with_user: bool, filler: int) -> list[dict[str, Any]]:
    def uid(type_: str, id_: str) -> dict[str, str]:
        return {"type": type_, "id": id_}

    def parents(type_: str, pool: list[str]) -> list[dict[str, str]]:
        if not pool:
            return []
        return [uid(type_, p) for p in draw(st.lists(st.sampled_from(pool), max_size=2,
                                                    unique=True))]

    out = [{"uid": uid(names.folder, f), "attrs": {},
            "parents": parents(names.folder, FOLDERS[:i])} for i, f in enumerate(FOLDERS)]
    out += [{"uid": uid("Pdp::Group", g), "attrs": {},
             "parents": parents("Pdp::Group", GROUPS[:i])} for i, g in enumerate(GROUPS)]
    for d in DOCS[:draw(st.integers(1, len(DOCS)))]:
        attrs = {a: json_value(draw, kind_of(a), names)
                 for a, optional in doc_attrs if not optional or draw(st.booleans())}
        out.append({"uid": uid(names.doc, d), "attrs": attrs,
                    "parents": parents(names.folder, FOLDERS)})
    if with_user:
        for u in USERS:
            attrs = {"n0": pick(draw, LONGS)}
            if draw(st.booleans()):
                attrs["s0"] = pick(draw, STRINGS)
            out.append({"uid": uid(names.user, u), "attrs": attrs,
                        "parents": parents(names.folder, FOLDERS)})
    for w in WORKLOADS[:2]:
        if draw(st.booleans()):
            out.append({"uid": uid("Pdp::Workload", w), "attrs": {},
                        "parents": parents("Pdp::Group", GROUPS)})
    out += [{"uid": uid(names.q("Filler"), str(i)), "attrs": {}, "parents": []}
            for i in range(filler)]
    return out


# -- requests ---------------------------------------------------------------------------

def _context(draw: Any, action: Action, names: Names, valid: bool) -> dict[str, Any]:
    context = {a: json_value(draw, kind_of(a), names)
               for a, optional in action.context if not optional or draw(st.booleans())}
    if valid:
        return context
    mistake = pick(draw, ["extra", "missing", "wrong-kind", "bad-extension"])
    if mistake == "extra":
        context["zz"] = 1
    elif mistake == "missing" and action.context:
        context.pop(action.context[0][0], None)
    elif mistake == "wrong-kind" and context:
        key = pick(draw, sorted(context))
        context[key] = True if not isinstance(context[key], bool) else "yes"
    elif mistake == "bad-extension":
        for key in sorted(context):
            if kind_of(key) in ("ipaddr", "decimal", "datetime", "duration"):
                context[key] = pick(draw, BAD_EXTENSION_STRINGS)
                break
    return context


def _identity(draw: Any) -> VerifiedIdentity:
    pid = pick(draw, WORKLOADS)
    spiffe = pid.startswith("spiffe://")
    td, _, path = pid.removeprefix("spiffe://").partition("/") if spiffe else ("", "", "")
    issued = MONDAY_10 - timedelta(seconds=pick(draw, [10, 400, 3000]))
    return VerifiedIdentity(
        principal_id=pid, kind=pick(draw, ["jwt-svid", "x509-svid", "jwt"]),
        issuer="iss", trust_domain=td, path=f"/{path}" if spiffe else "",
        scopes=frozenset(draw(st.sets(st.sampled_from(["a", "ab", "b"]), max_size=2))),
        groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=2))),
        issued_at=issued, expires_at=issued + timedelta(hours=1))


def _resource(draw: Any, action: Action, names: Names,
              doc_attrs: tuple[tuple[str, bool], ...]) -> ResourceRef:
    kind = action.resource if not rare(draw, 20) else ("C" if action.resource == "D" else "D")
    if kind == "C":
        return ResourceRef(names.color, pick(draw, COLORS + ["purple"]))
    form = pick(draw, ["static", "static", "unknown", "described"])
    if form == "static":
        return ResourceRef(names.doc, pick(draw, DOCS))
    if form == "unknown":
        return ResourceRef(names.doc, "d9")
    attrs = {a: json_value(draw, kind_of(a), names)
             for a, optional in doc_attrs if not optional or draw(st.booleans())}
    parents = tuple((names.folder, f) for f in draw(st.lists(st.sampled_from(FOLDERS),
                                                             max_size=2, unique=True)))
    return ResourceRef(names.doc, pick(draw, ["n0", "n1"]), attrs=attrs,
                       parents=parents)


@st.composite
def _request(draw: Any, case: Case, doc_attrs: tuple[tuple[str, bool], ...],
             previous: Request | None) -> Request:
    names = case.names
    live = LiveSnapshot(now=MONDAY_10, incident=draw(st.booleans()),
                        risk_level=draw(st.integers(0, 3)), business_hours=draw(st.booleans()))
    valid = not rare(draw, 8)
    repeat = pick(draw, ["fresh", "same", "other-principal"]) if previous else "fresh"
    if previous is not None and repeat == "same":
        # The same request with new values: a shape (and entity set) seen before.
        action = case.actions[previous.action]
        return Request(previous.action, previous.workload, previous.user, previous.resource,
                       _context(draw, action, names, valid), live, previous.grants,
                       previous.as_token)
    action = case.actions[previous.action if previous and repeat == "other-principal"
                          else pick(draw, sorted(case.actions))]
    workload, user = None, None
    if action.principal == "U" and not rare(draw, 20):
        user_id = pick(draw, USERS + ["u9"])
        properties = None
        if user_id == "u9" and draw(st.booleans()):
            properties = {"n0": pick(draw, LONGS)}
        user = (user_id, properties)
    else:
        workload = _identity(draw)
    if previous is not None and repeat == "other-principal":
        # Another principal on the same resource and context: what it warmed must not leak.
        return Request(previous.action, workload, user, previous.resource, previous.context,
                       live, previous.grants, draw(st.booleans()))
    grants = []
    for i, template in enumerate(draw(st.lists(st.sampled_from(case.templates), max_size=2))
                                 if case.templates else []):
        template_action = case.actions[case.template_actions[template]]
        mine = workload is not None and draw(st.booleans())
        principal = workload.principal_id if mine else pick(draw, WORKLOADS)
        if template_action.resource == "D":
            resource_type, resource_id = names.doc, pick(draw, DOCS + ["d9", "n0"])
        else:
            resource_type, resource_id = names.color, pick(draw, COLORS)
        grants.append(Grant(id=f"g{i}", template=template, principal=principal,
                            resource_type=resource_type, resource_id=resource_id,
                            expires_at=MONDAY_10 + timedelta(minutes=5), task="t",
                            created_by=None, created_at=MONDAY_10))
    return Request(action.name, workload, user, _resource(draw, action, names, doc_attrs),
                   _context(draw, action, names, valid), live, tuple(grants),
                   as_token=draw(st.booleans()))


@st.composite
def cases(draw: Any) -> Case:
    """A bundle and a sequence of requests over it."""
    ns = pick(draw, ["", "App"])
    names = Names(ns=ns, color_ns=pick(draw, ["", "Ext"]) if ns else "")
    with_user = draw(st.booleans())
    actions = draw(_actions(with_user))
    doc_attrs = draw(_declared(DOC_ATTRS))
    big_policies = rare(draw, 10)
    big_entities = rare(draw, 8)
    policies, effects, templates, template_actions = [], {}, [], {}
    for i in range(draw(st.integers(1, 8))):
        effect, text = draw(_policy(names, actions, doc_attrs, f"p{i}"))
        policies.append(text)
        effects[f"p{i}"] = effect
    for i in range(draw(st.integers(0, 2))):
        effect, text = draw(_policy(names, actions, doc_attrs, f"t{i}", template=True))
        policies.append(text)
        effects[f"t{i}"] = effect
        templates.append(f"t{i}")
        template_actions[f"t{i}"] = text.split('Action::"')[1].split('"')[0]
    if big_policies:
        # Padding: the same generator, drawn from a seed so that hypothesis need not
        # carry (or shrink) sixty policies.
        seeded = random.Random(draw(st.integers(0, 2**32)))
        for i in range(PADDING):
            effect, text = _seeded_policy(seeded, names, actions, f"pad{i}")
            policies.append(text)
            effects[f"pad{i}"] = effect
    if big_entities:
        # Entity slices decide what a request can reach: make its answer depend on it
        # (ancestors of the principal, of the resource, of an entity the context names).
        for i, action in enumerate(actions.values()):
            reach = [f"resource in {names.folder}::{one}" for one in ('"f1"', '"f2"')]
            if action.principal == "U":
                reach.append(f'principal in {names.folder}::"f1"')
            if any(a == "doc0" for a, _ in action.context):
                reach.append(f'context has doc0 && context.doc0 in {names.folder}::"f2"')
            effect = pick(draw, ["permit", "forbid"])
            policies.append(f'@id("reach{i}") @reason("Reach {i}.")\n{effect} (principal, '
                            f"action == {names.action(action.name)}, resource) "
                            f"when {{ {pick(draw, reach)} }};")
            effects[f"reach{i}"] = effect
    entities = _entities(draw, names, doc_attrs, with_user,
                         ENTITY_SLICE_MIN if big_entities else 0)
    case = Case(names=names, schema=_schema(names, actions, doc_attrs, with_user, big_entities),
                policies=policies, effects=effects, templates=templates, entities=entities,
                actions=actions, template_actions=template_actions)
    previous = None
    for _ in range(draw(st.integers(1, 6))):
        previous = draw(_request(case, doc_attrs, previous))
        case.requests.append(previous)
    return case


def _seeded_policy(rng: random.Random, names: Names, actions: dict[str, Action],
                   pid: str) -> tuple[str, str]:
    """A padding policy: scope-only, with a simple condition (cheap to generate)."""
    effect = rng.choice(["permit", "permit", "forbid"])
    action = rng.choice(sorted(a for a in actions if actions[a].principal == "W"))
    info = actions[action]
    principal = rng.choice([
        "principal", f"principal == Pdp::Workload::{cedar_string(rng.choice(WORKLOADS))}",
        f"principal in Pdp::Group::{cedar_string(rng.choice(GROUPS))}",
        f'principal == Pdp::Workload::"spiffe://example.org/pad{rng.randrange(1000)}"'])
    if info.resource == "D":
        resource = rng.choice([
            "resource", f"resource == {names.doc}::{cedar_string(rng.choice(DOCS))}",
            f"resource in {names.folder}::{cedar_string(rng.choice(FOLDERS))}",
            f'resource == {names.doc}::"pad{rng.randrange(1000)}"', f"resource is {names.doc}"])
    else:
        resource = rng.choice(["resource", f"resource == {names.color}::\"red\""])
    condition = rng.choice(["", " when { principal.path like \"/w*\" }",
                            ' unless { principal.scopes.contains("a") }'])
    return effect, (f"@id({cedar_string(pid)}) @reason(\"Padding {pid}.\")\n"
                    f"{effect} ({principal}, action == {names.action(action)}, {resource})"
                    f"{condition};")
