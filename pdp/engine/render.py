"""Cedar expressions back to readable text, with only the parentheses needed.

Cedar's own rendering (``str(PolicySet)``) is correct but wraps every
sub-expression in parentheses; explanations are read by people. The output
is checked by round trip in the tests: Cedar parses it back to the same node.
"""

from __future__ import annotations

import json

from cedarpy import pst

# Cedar's precedence, loosest first (see the Cedar grammar:
# Or < And < Relation < Add < Mult < Unary < Member).
_OR, _AND, _REL, _ADD, _MUL, _UNARY, _MEMBER, _PRIMARY = range(8)

_BINARY = {
    "or": ("||", _OR), "and": ("&&", _AND),
    "eq": ("==", _REL), "not_eq": ("!=", _REL), "less": ("<", _REL), "less_eq": ("<=", _REL),
    "greater": (">", _REL), "greater_eq": (">=", _REL), "in": ("in", _REL),
    "add": ("+", _ADD), "sub": ("-", _ADD), "mul": ("*", _MUL),
}
# Binary operations Cedar writes as methods: left.name(right).
_METHODS = {
    "contains": "contains", "contains_all": "containsAll", "contains_any": "containsAny",
    "get_tag": "getTag", "has_tag": "hasTag", "is_in_range": "isInRange", "offset": "offset",
    "duration_since": "durationSince", "decimal_less_than": "lessThan",
    "decimal_less_eq": "lessThanOrEqual", "decimal_greater": "greaterThan",
    "decimal_greater_eq": "greaterThanOrEqual",
}
# Unary operations written as functions f(x) or methods x.f().
_FUNCTIONS = {"datetime", "decimal", "duration", "ip"}
_UNARY_METHODS = {
    "is_empty": "isEmpty", "is_ipv4": "isIpv4", "is_ipv6": "isIpv6", "is_loopback": "isLoopback",
    "is_multicast": "isMulticast", "to_date": "toDate", "to_time": "toTime",
    "to_milliseconds": "toMilliseconds", "to_seconds": "toSeconds", "to_minutes": "toMinutes",
    "to_hours": "toHours", "to_days": "toDays",
}


def render(expr: pst.Expr) -> str:
    """Cedar source text for ``expr``."""
    return _render(expr)[0]


def entity_uid_text(uid: pst.EntityUid) -> str:
    return f"{entity_type_text(uid.type)}::{json.dumps(uid.id, ensure_ascii=False)}"


def entity_type_text(t: pst.EntityType) -> str:
    return "::".join((*t.namespace, t.basename))


def _wrap(expr: pst.Expr, at_least: int) -> str:
    text, level = _render(expr)
    return text if level >= at_least else f"({text})"


def _render(e: pst.Expr) -> tuple[str, int]:  # noqa: PLR0911, PLR0912 - one arm per node type
    if isinstance(e, pst.Var):
        return e.name, _PRIMARY
    if isinstance(e, pst.Slot):
        return e.name, _PRIMARY
    if isinstance(e, pst.BoolLit):
        return ("true" if e.value else "false"), _PRIMARY
    if isinstance(e, pst.LongLit):
        return str(e.value), (_PRIMARY if e.value >= 0 else _UNARY)
    if isinstance(e, pst.StringLit):
        return json.dumps(e.value, ensure_ascii=False), _PRIMARY
    if isinstance(e, pst.EntityLit):
        return entity_uid_text(e.value), _PRIMARY
    if isinstance(e, pst.GetAttr):
        return f"{_wrap(e.base, _MEMBER)}.{e.attr}", _MEMBER
    if isinstance(e, pst.HasAttr):
        return f"{_wrap(e.base, _ADD)} has {'.'.join(e.attrs)}", _REL
    if isinstance(e, pst.Like):
        pattern = "".join("*" if isinstance(p, pst.Wildcard) else
                          p.value.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*")
                          for p in e.pattern)
        return f'{_wrap(e.base, _ADD)} like "{pattern}"', _REL
    if isinstance(e, pst.Is):
        text = f"{_wrap(e.base, _ADD)} is {entity_type_text(e.entity_type)}"
        if e.in_expr is not None:
            text += f" in {_wrap(e.in_expr, _ADD)}"
        return text, _REL
    if isinstance(e, pst.IfThenElse):
        return (f"if {render(e.cond)} then {render(e.then_expr)} else {render(e.else_expr)}",
                _OR - 1)
    if isinstance(e, pst.Set):
        return "[" + ", ".join(render(x) for x in e.elements) + "]", _PRIMARY
    if isinstance(e, pst.Record):
        fields = ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in e.fields.items())
        return "{" + fields + "}", _PRIMARY
    if isinstance(e, pst.UnaryOp):
        return _render_unary(e)
    if isinstance(e, pst.BinaryOp):
        return _render_binary(e)
    raise ValueError(f"cannot render {type(e).__name__}")


def _render_unary(e: pst.UnaryOp) -> tuple[str, int]:
    if e.op == "not":
        return f"!{_wrap(e.arg, _UNARY)}", _UNARY
    if e.op == "neg":
        return f"-{_wrap(e.arg, _UNARY)}", _UNARY
    if e.op in _FUNCTIONS:
        return f"{e.op}({render(e.arg)})", _PRIMARY
    return f"{_wrap(e.arg, _MEMBER)}.{_UNARY_METHODS[e.op]}()", _MEMBER


def _render_binary(e: pst.BinaryOp) -> tuple[str, int]:
    if e.op in _METHODS:
        return f"{_wrap(e.left, _MEMBER)}.{_METHODS[e.op]}({render(e.right)})", _MEMBER
    symbol, level = _BINARY[e.op]
    # Left-associative: the right operand needs parentheses at the same level.
    left = _wrap(e.left, level if level != _REL else _ADD)
    right = _wrap(e.right, level + 1 if level != _REL else _ADD)
    return f"{left} {symbol} {right}", level
