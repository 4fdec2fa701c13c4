"""The actions a bundle's schema declares, and what their contexts take.

Cedar knows the actions (``Entities.from_json_str("[]", schema)`` lists them
with their action groups), and Cedar's validator tells which actions declare
``context.live`` / ``context.credential``: we validate one probe policy per
action that reads the attribute and see which ones type-check. So the PDP
never parses a schema itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import cedarpy
from cedarpy import pst

from pdp.engine.pdp_schema import CREDENTIAL_ATTR, LIVE_ATTR

Uid = tuple[str, str]


_PLAIN_ID = re.compile(r'[^"\\\x00-\x1f\x7f]*')


def cedar_uid(type_: str, id_: str) -> str:
    """``Type::"id"`` in Cedar syntax, with the id escaped as a Cedar string."""
    if _PLAIN_ID.fullmatch(id_):
        return f'{type_}::"{id_}"'
    return f"{type_}::{json.dumps(id_, ensure_ascii=False)}"


@dataclass(frozen=True, slots=True)
class ActionInfo:
    type: str
    id: str
    parents: tuple[Uid, ...]
    declares_live: bool
    declares_credential: bool
    # Derived once (every decision reads them): the uid as a tuple, in Cedar syntax, and
    # as the ``{type, id}`` object Cedar's request takes (read, never modified).
    uid: Uid = field(init=False, compare=False, repr=False)
    cedar: str = field(init=False, compare=False, repr=False)
    cedar_json: Mapping[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uid", (self.type, self.id))
        object.__setattr__(self, "cedar", cedar_uid(self.type, self.id))
        object.__setattr__(self, "cedar_json", {"type": self.type, "id": self.id})


class UnknownAction(ValueError):
    """The request names an action the schema does not declare (or names it ambiguously)."""


@dataclass(frozen=True, slots=True)
class ActionCatalog:
    by_uid: Mapping[Uid, ActionInfo]
    # Bare action id -> the actions of that id (one, unless namespaces share it).
    by_name: Mapping[str, tuple[ActionInfo, ...]] = field(default_factory=dict)

    def resolve(self, name: str) -> ActionInfo:
        """Find an action by Cedar uid (``App::Action::"read"``) or by its bare id (``read``)."""
        if "::" in name and name.endswith('"'):
            type_, _, quoted = name.partition('::"')
            found = self.by_uid.get((type_, quoted[:-1]))
            if found is None:
                raise UnknownAction(f"unknown action {name}")
            return found
        matches = self.by_name.get(name, ())
        if not matches:
            raise UnknownAction(f"unknown action {name!r}")
        if len(matches) > 1:
            choices = ", ".join(sorted(a.cedar for a in matches))
            raise UnknownAction(f"action {name!r} is ambiguous; name one of {choices}")
        return matches[0]

    def ancestors(self, uid: Uid) -> frozenset[Uid]:
        """Every action group ``uid`` is in, transitively."""
        seen: set[Uid] = set()
        stack = list(self.by_uid[uid].parents) if uid in self.by_uid else []
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.add(parent)
                info = self.by_uid.get(parent)
                stack.extend(info.parents if info else ())
        return frozenset(seen)


def build_action_catalog(schema: cedarpy.Schema, entities: cedarpy.Entities) -> ActionCatalog:
    """Every action of the schema with its groups and which PDP attributes its context declares."""
    actions: list[tuple[Uid, tuple[Uid, ...]]] = []
    for entity in json.loads(str(entities)):
        uid = entity["uid"]
        if uid["type"] == "Action" or uid["type"].endswith("::Action"):
            parents = tuple((p["type"], p["id"]) for p in entity.get("parents", []))
            actions.append(((uid["type"], uid["id"]), parents))
    live = _declaring(schema, [uid for uid, _ in actions], LIVE_ATTR)
    credential = _declaring(schema, [uid for uid, _ in actions], CREDENTIAL_ATTR)
    by_uid = {uid: ActionInfo(type=uid[0], id=uid[1], parents=parents,
                              declares_live=uid in live, declares_credential=uid in credential)
              for uid, parents in actions}
    by_name: dict[str, tuple[ActionInfo, ...]] = {}
    for info in by_uid.values():
        by_name[info.id] = by_name.get(info.id, ()) + (info,)
    return ActionCatalog(by_uid=by_uid, by_name=by_name)


def _declaring(schema: cedarpy.Schema, actions: list[Uid], attr: str) -> set[Uid]:
    """The actions whose context type-checks ``context.<attr>`` (one probe policy each)."""
    if not actions:
        return set()
    reads_attr = pst.When(pst.BinaryOp(
        "eq", pst.GetAttr(pst.Var("context"), attr), pst.GetAttr(pst.Var("context"), attr)))
    probes = {}
    for i, (type_, id_) in enumerate(actions):
        namespace, _, basename = type_.rpartition("::")
        entity_type = pst.EntityType(basename=basename,
                                     namespace=tuple(namespace.split("::")) if namespace else ())
        probes[f"probe{i}"] = pst.Template(
            id=f"probe{i}", effect="permit", principal=pst.ScopeAny(),
            action=pst.ActionEq(pst.EntityUid(type=entity_type, id=id_)),
            resource=pst.ScopeAny(), clauses=(reads_attr,),
            annotations=pst.FrozenMap({"id": f"probe{i}"}))
    text = str(cedarpy.PolicySet.from_pst(
        pst.PolicySet(templates={}, static_policies=probes, template_links=())))
    result = cedarpy.validate_policies(text, schema)
    # Only "attribute not found" means the context lacks it; an action that applies
    # to nothing fails the probe for another reason and declares nothing either.
    failed = {result.id_annotations_by_policy_id.get(e.policy_id, e.policy_id)
              for e in result.errors}
    return {uid for i, uid in enumerate(actions) if f"probe{i}" not in failed}
