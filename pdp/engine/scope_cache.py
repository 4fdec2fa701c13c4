"""Remember what a load derived from each policy file's nodes, so that a restart on the
same files need not turn them into nodes.

Turning Cedar's parse into Python nodes (``PolicySet.to_pst``) is the longest piece of a
start's critical path at 10,000 policies: about 1.7 s of the loading thread, with the GIL
held (bench/RESULTS.md, "Issue 16, round 8: ready3"). At start the PDP needs only a few
facts of each policy: its Cedar id, kind, effect and annotations (its id, reason and
advice), its scope (the slicing index, :mod:`pdp.engine.slicing`) and the entities its
conditions name (:mod:`pdp.engine.entity_slice`). The nodes themselves serve slices,
explanations and grants, one policy at a time, and are made when first asked for
(:class:`pdp.engine.lazy_nodes.LazyNode`).

These facts are a pure function of the file's text and the cedarpy that parsed it. After
a load in which a file was turned into nodes, they are written to
``<state_dir>/scopes/<key>`` (``key``: the SHA-256 of :data:`FACTS_FORMAT`, the PDP's
version, cedarpy's build, the merged schema and the file's text, as for the validation
verdicts); a later load that computes the same key takes them instead of the nodes.

Threat model: the one of :mod:`pdp.engine.validation_cache`, whose checks this reuses. An
entry is believed only if it and its directory belong to the PDP's user and nobody else
can write them, it is a regular file, its first line is its own key, its second the
SHA-256 of the rest, and the rest is exactly the shape below (pydantic, strict). A torn,
truncated or bit-flipped entry, another file's entry, or one planted by another user is
not used: the file is parsed as without the cache. Whoever is the PDP's user could write
an entry that files a ``forbid`` under the wrong scope, so that slices leave it out; that
user can already rewrite the log, the revocations and the grants in the same directory,
so the cache gives them no new way to an allow (README, "Validation cache").
``validation_cache = false`` turns this cache off too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import TypeAdapter, ValidationError

from pdp.engine.validation_cache import (
    ValidationCache,
    cedar_build,
    content_key,
    read_private,
    write_private,
)

FACTS_FORMAT = b"pdp policy facts v1"
"""Changes whenever what an entry holds or means changes, so that old entries stop matching."""
KEEP = 32
"""Entries kept (one per policy file loaded); the oldest go first."""
DIRECTORY = "scopes"
"""The cache's directory under the state directory."""
MAX_BYTES = 64 << 20
"""An entry larger than this is not read (10,000 generated policies: ~2.5 MB)."""

Uid = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ScopeKeys:
    """Where one side (principal or resource) of a scope files a policy in the index:
    unconstrained (``any``), under an entity, or under an entity type."""

    any: bool = False
    entity: Uid | None = None
    type: str | None = None


class Scope(NamedTuple):
    """Where the slicing index files a policy: its principal's and resource's keys, and
    the actions its scope names (None: any)."""

    principal: ScopeKeys
    resource: ScopeKeys
    actions: frozenset[Uid] | None


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    """What a load needs of one parsed policy without its node."""

    cedar_id: str  # policy<N>, its place in its file
    is_template: bool
    effect: Literal["permit", "forbid"]
    annotations: Mapping[str, str]  # the node's own mapping, kept (not copied) at a load
    scope: Scope
    literals: frozenset[Uid]  # the entities its conditions name


# The stored shape: one row per policy, lists (JSON has no tuples or sets).
_Keys = tuple[bool, tuple[str, str] | None, str | None]
_Row = tuple[str, bool, Literal["permit", "forbid"], list[tuple[str, str]], _Keys, _Keys,
             list[tuple[str, str]] | None, list[tuple[str, str]]]
_ROWS: TypeAdapter[list[_Row]] = TypeAdapter(list[_Row])


def facts_key(schema_text: str, policy_text: str, *, parser: bytes) -> str:
    """The SHA-256 (hex) of everything an entry depends on."""
    return content_key(FACTS_FORMAT, schema_text, policy_text, build=parser)


class ScopeCache:
    """The entries under ``directory`` (``<state_dir>/scopes``); see the module."""

    def __init__(self, directory: Path, *, keep: int = KEEP) -> None:
        self.directory = directory
        self.keep = keep
        self._parser: bytes | None = None

    @classmethod
    def beside(cls, validation: ValidationCache) -> ScopeCache:
        """The cache that rides with the validation verdicts: ``<state_dir>/scopes`` beside
        ``<state_dir>/validated``, on and off with them (``validation_cache``)."""
        return cls(validation.directory.parent / DIRECTORY)

    def key(self, schema_text: str, policy_text: str) -> str:
        """:func:`facts_key` with this process's cedarpy build."""
        if self._parser is None:
            self._parser = cedar_build()
        return facts_key(schema_text, policy_text, parser=self._parser)

    def get(self, key: str) -> tuple[PolicyFacts, ...] | None:
        """The facts stored under ``key``, or None when there is no entry to believe."""
        data = read_private(self.directory, key, MAX_BYTES + 1)
        if data is None or len(data) > MAX_BYTES:
            return None
        head, _, body = data.partition(b"\n")
        digest, _, body = body.partition(b"\n")
        if head != key.encode() or digest != hashlib.sha256(body).hexdigest().encode():
            return None
        try:
            rows = _ROWS.validate_json(body, strict=True)
        except ValidationError:
            return None
        return tuple(_facts(row) for row in rows)

    def put(self, key: str, facts: Sequence[PolicyFacts]) -> None:
        """Store ``facts`` under ``key``; quietly nothing when the state directory cannot."""
        body = _ROWS.dump_json([_row(f) for f in facts])
        data = key.encode() + b"\n" + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
        write_private(self.directory, key, data, keep=self.keep)


def _keys_row(keys: ScopeKeys) -> _Keys:
    return (keys.any, keys.entity, keys.type)


def _row(f: PolicyFacts) -> _Row:
    principal, resource, actions = f.scope
    return (f.cedar_id, f.is_template, f.effect, [*f.annotations.items()], _keys_row(principal),
            _keys_row(resource), None if actions is None else sorted(actions), sorted(f.literals))


def _facts(row: _Row) -> PolicyFacts:
    cedar_id, is_template, effect, annotations, principal, resource, actions, literals = row
    scope = Scope(ScopeKeys(*principal), ScopeKeys(*resource),
                  None if actions is None else frozenset(actions))
    return PolicyFacts(cedar_id, is_template, effect, dict(annotations), scope,
                       frozenset(literals))
