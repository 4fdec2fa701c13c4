"""The readable renderer must mean exactly what Cedar parsed: checked by round trip."""

from __future__ import annotations

import cedarpy
import pytest
from cedarpy import pst

from pdp.engine.render import render
from tests.conftest import POLICIES


def _conditions(text: str) -> list[pst.Expr]:
    parsed = cedarpy.policies_to_pst(text)
    return [c.expr for p in parsed.static_policies.values() for c in p.clauses]


def _round_trip(expr: pst.Expr) -> pst.Expr:
    text = render(expr)
    reparsed = _conditions(f"permit(principal, action, resource) when {{ {text} }};")
    assert len(reparsed) == 1, text
    return reparsed[0]


def test_every_condition_of_the_example_bundle_round_trips() -> None:
    exprs = [e for f in sorted(POLICIES.glob("*.cedar")) for e in _conditions(f.read_text())]
    assert exprs
    for expr in exprs:
        assert _round_trip(expr) == expr, render(expr)


@pytest.mark.parametrize("source", [
    "context.b.c < 2 && !(context.y || resource.w)",
    "(1 + 2) * 3 == 9 - (4 - 1)",
    "1 - (2 - 3) == 2",
    "context.tags.contains(\"x\") && context.tags.containsAll([\"a\", \"b\"])",
    "principal in Pdp::Group::\"a\" || resource is App::Dataset in App::DataDomain::\"x\"",
    "context has live.now && context.name like \"ab*c\\\\*\"",
    "if context.a then 1 else 2 == 2",
    "-(context.n) < -3",
    "ip(\"10.0.0.1\").isLoopback() && decimal(\"1.5\").lessThan(decimal(\"2.0\"))",
    "context.live.now > datetime(\"2026-01-01T00:00:00Z\").offset(duration(\"1h\"))",
    "{\"a\": 1, \"b\": [true]} == context.r",
    "(context.a == context.b) == true",
])
def test_tricky_expressions_round_trip(source: str) -> None:
    (expr,) = _conditions(f"permit(principal, action, resource) when {{ {source} }};")
    assert _round_trip(expr) == expr, render(expr)


def test_rendering_drops_the_parentheses_cedar_adds() -> None:
    (expr,) = _conditions(
        "permit(principal, action, resource) when { context.live.incident && resource.sensitive };")
    assert render(expr) == "context.live.incident && resource.sensitive"
