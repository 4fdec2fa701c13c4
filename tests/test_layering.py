"""The import layering of ``pdp/`` and ``context/``, checked on the source with ``ast``.

Each package (or top-level module) sits in one layer; a module may import only
from layers *below* its own, never from its own layer's other packages, never
from above. Lowest first:

==========  ==============================================================
leaves      ``pdp`` (the version), ``pdp.reasons`` (the closed set of reason
            codes), ``pdp.pointers`` (RFC 6901 redaction pointers),
            ``pdp.gateway`` (the route table: HTTP routes -> action and
            resource, no PDP types) and ``pdp.collector`` (the cyclic garbage
            collector paused). They import nothing of the PDP.
config      ``pdp.config``: settings; checks routes and pointers with the
            leaves, so a bad one is refused when the file loads.
engine      ``pdp.engine``: bundles and Cedar evaluation; knows no identities.
context     ``context``: live context, revocations, grants; the durable
            admin state through its own ``context.admin_store`` protocol.
identity    ``pdp.identity``: credential verification; consults revocations.
decision    ``pdp.decision``: ``decide()`` and the DecisionService, which
            writes through its own ``pdp.decision.log.DecisionLog`` protocol.
stores      ``pdp.audit`` (the decision log and the admin state's stores)
            and ``pdp.metrics``: they implement or observe the layers below.
            The audit stores sit *above* ``decision`` and ``context`` because
            they satisfy the protocols those define (and their errors
            subclass theirs), so ``decision`` and ``context`` never import
            ``audit``; the composition root hands a store in.
authoring   ``pdp.authoring``: ``pdp test``, coverage, impact, replay; they
            call the decision service as any caller would and read the log.
components  ``pdp.components``: the composition root, wiring all of the above.
api         ``pdp.api``: the HTTP doors.
cli         ``pdp.cli``: the ``pdp`` command.
==========  ==============================================================

What counts as an import: every ``import``/``from ... import`` anywhere in a
module, at module level, inside functions and under ``if TYPE_CHECKING:`` (a
type-only import still couples the two packages). On top of the layers:

- no cycle between packages, checked on the import graph itself (so editing
  the table above cannot hide one);
- no cycle between modules at import time (module-level imports, not
  ``TYPE_CHECKING`` ones): a function-level import is not allowed to hide one;
- function-level imports of ``pdp``/``context`` modules only where
  :data:`FUNCTION_LEVEL_ALLOWED` says why (an optional heavy dependency).

Each failure names the importing file and line.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pdp", "context")

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("leaves", frozenset({"pdp", "pdp.reasons", "pdp.pointers", "pdp.gateway", "pdp.collector"})),
    ("config", frozenset({"pdp.config"})),
    ("config-docs", frozenset({"pdp.config_example"})),  # pdp.example.toml from the model
    ("engine", frozenset({"pdp.engine"})),
    ("context", frozenset({"context"})),
    ("identity", frozenset({"pdp.identity"})),
    ("decision", frozenset({"pdp.decision"})),
    ("stores", frozenset({"pdp.audit", "pdp.metrics"})),
    ("authoring", frozenset({"pdp.authoring", "pdp.broker"})),  # callers of the decision service
    ("components", frozenset({"pdp.components"})),
    ("api", frozenset({"pdp.api"})),
    ("console", frozenset({"pdp.console"})),  # a client of the API's own handlers
    ("server", frozenset({"pdp.server"})),  # the served app: the API with the console
    ("cli", frozenset({"pdp.cli"})),
)

# Function-level imports of pdp/context modules that are allowed, by importing module
# prefix and imported module; each says why. Everything else is imported at module level.
FUNCTION_LEVEL_ALLOWED: Mapping[tuple[str, str], str] = {
    # The CLI defers what a command needs (uvicorn, the engine, the log, the broker) to the
    # command itself, so `pdp --help`, `--version` and shell completion stay fast; main.py
    # imports each command module in the function that registers it, when that command is
    # looked up (pdp.cli.lazy_group): an import made then cannot close a cycle at import time.
    ("pdp.cli", "*"): "deferred per command: `pdp --help` and completion stay fast",
    # Optional dependencies: psycopg comes with the `postgres` extra only.
    ("pdp.audit.factory", "pdp.audit.postgres.settings"): "psycopg is optional (postgres extra)",
}


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, where it is, and how it is reached."""

    module: str          # the importing module, e.g. "pdp.decision.service"
    path: Path           # its file, relative to the checkout
    line: int
    target: str          # the imported module, e.g. "pdp.audit.errors"
    in_function: bool    # inside a def (runs when called, not when imported)
    type_only: bool      # under ``if TYPE_CHECKING:``

    @property
    def where(self) -> str:
        return f"{self.path.as_posix()}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def scan(root: Path) -> list[Import]:
    """Every import of a ``pdp``/``context`` module by a module under ``root``."""
    modules = {module_name(p, root) for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    found: list[Import] = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            name = module_name(path, root)
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            tree = ast.parse(path.read_bytes(), filename=str(path))
            for node, in_function, type_only in _imports(tree):
                for target in _targets(node, package, modules):
                    found.append(Import(name, path.relative_to(root), node.lineno, target,
                                        in_function, type_only))
    return found


def _imports(tree: ast.AST, in_function: bool = False, type_only: bool = False,
             ) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function, type_only
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _imports(node, True, type_only)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), in_function, True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), in_function,
                                    type_only)
        else:
            yield from _imports(node, in_function, type_only)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, package: str, modules: set[str]) -> list[str]:
    """The modules an import statement loads (``from p import m`` names module ``p.m``
    when it is one)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            base = ".".join(up + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                 for a in node.names]
    return sorted({n for n in names if n.split(".")[0] in PACKAGES})


def unit_of(module: str) -> str:
    """The package a module belongs to for layering: ``context``, ``pdp``, ``pdp.<name>``."""
    parts = module.split(".")
    return parts[0] if parts[0] == "context" or len(parts) == 1 else ".".join(parts[:2])


def layer_index(layers: tuple[tuple[str, frozenset[str]], ...]) -> dict[str, int]:
    return {unit: i for i, (_, units) in enumerate(layers) for unit in units}


def layering_violations(imports: list[Import],
                        layers: tuple[tuple[str, frozenset[str]], ...] = LAYERS) -> list[str]:
    """Each import of a package from the same layer or a higher one, and each package
    the table does not place."""
    rank = layer_index(layers)
    names = [name for name, _ in layers]
    out = []
    for imp in imports:
        src, dst = unit_of(imp.module), unit_of(imp.target)
        if src == dst:
            continue
        for unit in (src, dst):
            if unit not in rank:
                out.append(f"{imp.where}: {unit} is in no layer (add it to LAYERS)")
        if src in rank and dst in rank and rank[dst] >= rank[src]:
            direction = "upward" if rank[dst] > rank[src] else "sideways"
            out.append(f"{imp.where}: {imp.module} ({names[rank[src]]}) imports {imp.target} "
                       f"({names[rank[dst]]}): {direction}")
    return sorted(set(out))


def cycles(edges: Mapping[str, Mapping[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, {})):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(component: list[str], edges: Mapping[str, Mapping[str, list[str]]]) -> str:
    inside = set(component)
    lines = [f"  {a} -> {b} at {', '.join(where)}" for a in component
             for b, where in sorted(edges.get(a, {}).items()) if b in inside]
    return "cycle between " + ", ".join(component) + ":\n" + "\n".join(lines)


def package_edges(imports: list[Import]) -> dict[str, dict[str, list[str]]]:
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for imp in imports:
        src, dst = unit_of(imp.module), unit_of(imp.target)
        if src != dst:
            edges[src][dst].append(imp.where)
    return edges


def module_edges(imports: list[Import]) -> dict[str, dict[str, list[str]]]:
    """What runs at import time: module-level imports, not ``TYPE_CHECKING`` ones."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for imp in imports:
        if not imp.in_function and not imp.type_only and imp.module != imp.target:
            edges[imp.module][imp.target].append(imp.where)
    return edges


def _allowed(imp: Import) -> bool:
    return any((imp.module == src or imp.module.startswith(src + ".")) and dst in ("*", imp.target)
               for src, dst in FUNCTION_LEVEL_ALLOWED)


def unlisted_function_imports(imports: list[Import]) -> list[str]:
    return sorted(f"{i.where}: {i.module} imports {i.target} inside a function"
                  for i in imports if i.in_function and not _allowed(i))


# -- the tree as it is ---------------------------------------------------------------


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return scan(ROOT)


def test_every_import_points_down_the_layers(imports: list[Import]) -> None:
    assert len(imports) > 300  # the scan sees the tree (not an empty directory)
    assert layering_violations(imports) == []


def test_no_cycle_between_packages(imports: list[Import]) -> None:
    edges = package_edges(imports)
    assert [describe(c, edges) for c in cycles(edges)] == []


def test_no_cycle_between_modules_at_import_time(imports: list[Import]) -> None:
    edges = module_edges(imports)
    assert [describe(c, edges) for c in cycles(edges)] == []


def test_function_level_imports_only_where_the_allowlist_says_why(
        imports: list[Import]) -> None:
    assert unlisted_function_imports(imports) == []


def test_the_allowlist_holds_no_stale_entry(imports: list[Import]) -> None:
    """An entry whose import is gone is removed, so the list only ever shrinks."""
    used = {(src, dst) for src, dst in FUNCTION_LEVEL_ALLOWED for i in imports
            if i.in_function and (i.module == src or i.module.startswith(src + "."))
            and dst in ("*", i.target)}
    assert sorted(set(FUNCTION_LEVEL_ALLOWED) - used) == []


# -- the checks catch what they are for (planted in a scratch tree) ------------------


def _plant(root: Path, files: Mapping[str, str]) -> list[Import]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in PACKAGES:
        (root / pkg).mkdir(exist_ok=True)
    return scan(root)


BASE = {
    "pdp/__init__.py": "",
    "pdp/reasons.py": "",
    "pdp/engine/__init__.py": "",
    "pdp/engine/bundle.py": "from pdp.reasons import X\n",
    "pdp/decision/__init__.py": "",
    "pdp/decision/service.py": "from pdp.engine.bundle import Bundle\n",
    "pdp/audit/__init__.py": "",
    "pdp/audit/store.py": "from pdp.decision import service\n",
    "context/__init__.py": "",
}


def test_a_clean_scratch_tree_passes(tmp_path: Path) -> None:
    imports = _plant(tmp_path, BASE)
    assert {(i.module, i.target) for i in imports} == {
        ("pdp.engine.bundle", "pdp.reasons"), ("pdp.decision.service", "pdp.engine.bundle"),
        ("pdp.audit.store", "pdp.decision.service")}
    assert layering_violations(imports) == []
    assert cycles(package_edges(imports)) == []


def test_a_planted_upward_import_fails_naming_file_and_line(tmp_path: Path) -> None:
    imports = _plant(tmp_path, {**BASE, "pdp/decision/service.py":
                                "from pdp.engine.bundle import Bundle\n"
                                "from pdp.audit.store import DecisionLog\n"})
    assert layering_violations(imports) == [
        "pdp/decision/service.py:2: pdp.decision.service (decision) imports pdp.audit.store "
        "(stores): upward"]
    assert cycles(package_edges(imports)) == [["pdp.audit", "pdp.decision"]]


@pytest.mark.parametrize("planted", [
    "def f():\n    from pdp.audit.store import DecisionLog\n",         # hidden in a function
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pdp.audit.store\n",
    "class C:\n    def m(self):\n        from ..audit import store\n",  # relative, in a method
])
def test_an_upward_import_is_found_however_it_is_written(tmp_path: Path, planted: str) -> None:
    imports = _plant(tmp_path, {**BASE, "pdp/engine/graph.py": planted})
    found = layering_violations(imports)
    assert len(found) == 1 and found[0].startswith("pdp/engine/graph.py:")
    assert "imports pdp.audit" in found[0] and found[0].endswith("upward")


def test_siblings_in_one_layer_may_not_import_each_other(tmp_path: Path) -> None:
    imports = _plant(tmp_path, {**BASE, "pdp/metrics.py": "import pdp.audit.store\n"})
    assert layering_violations(imports) == [
        "pdp/metrics.py:1: pdp.metrics (stores) imports pdp.audit.store (stores): sideways"]


def test_a_package_in_no_layer_fails(tmp_path: Path) -> None:
    imports = _plant(tmp_path, {**BASE, "pdp/plugins/__init__.py": "from pdp import reasons\n"})
    assert layering_violations(imports) == [
        "pdp/plugins/__init__.py:1: pdp.plugins is in no layer (add it to LAYERS)"]


def test_a_function_level_import_hiding_a_module_cycle_is_reported(tmp_path: Path) -> None:
    imports = _plant(tmp_path, {
        **BASE,
        "pdp/decision/decide.py": "def decide():\n    from pdp.decision.delegation import c\n",
        "pdp/decision/delegation.py": "from pdp.decision.decide import Outcomes\n"})
    assert unlisted_function_imports(imports) == [
        "pdp/decision/decide.py:2: pdp.decision.decide imports pdp.decision.delegation "
        "inside a function"]
    # Hoisted to module level, the same pair is a cycle at import time.
    hoisted = _plant(tmp_path, {
        "pdp/decision/decide.py": "from pdp.decision.delegation import c\n"})
    edges = module_edges(hoisted)
    assert cycles(edges) == [["pdp.decision.decide", "pdp.decision.delegation"]]
    assert "pdp/decision/decide.py:1" in describe(cycles(edges)[0], edges)


def test_allowlisted_function_level_imports_pass(tmp_path: Path) -> None:
    imports = _plant(tmp_path, {
        **BASE,
        "pdp/cli/__init__.py": "",
        "pdp/cli/main.py": "def serve():\n    from pdp.api import app\n",
        "pdp/audit/factory.py": "def pg():\n    from pdp.audit.postgres.settings import PostgresSettings\n"})
    assert unlisted_function_imports(imports) == []
