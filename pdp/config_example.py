"""``pdp.example.toml``, written from the settings model so that it cannot drift from it.

Every key of :class:`pdp.config.Settings` appears with its description and its
default: scalar keys and tables as real TOML (the file loads to exactly the
defaults), keys whose default is "not set" and the repeated tables
(``[[issuers]]``, ``[[trust_domains]]``, ``[[routes]]``) and optional ones
(``[policies_git]``) commented out with a placeholder, since TOML has no null.
``tests/config/test_example_config.py`` checks that the file in the repository is
this module's output, that it loads, and that it equals the defaults.

Regenerate after changing the model::

    .venv/bin/python -m pdp.config_example > pdp.example.toml
"""

from __future__ import annotations

import json
import textwrap
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pdp.config import FLAG_ONLY, Settings

HEADER = """\
# pdp.example.toml: every setting of the PDP, its default and its meaning.
#
# Generated from the settings model (pdp/config.py) by
#   .venv/bin/python -m pdp.config_example > pdp.example.toml
# and checked by tests/config/test_example_config.py: do not edit by hand.
#
# As it stands this file sets every key to its default, so `pdp serve --config
# pdp.example.toml` behaves like `pdp serve` without one (outside --dev that refuses to
# start until `pep_allowlist` is set). Copy it, keep what you change.
# Every key can also be set as PDP_<KEY> (nested: PDP_AUDIT__BACKEND=postgres);
# flags win over variables, which win over the file.
"""

WIDTH = 92


def render() -> str:
    """The whole example file."""
    out: list[str] = [HEADER]
    _model(Settings, [], out)
    return "\n".join(out).rstrip("\n") + "\n"


def _model(model: type[BaseModel], path: list[str], out: list[str]) -> None:
    """``model``'s keys under ``[path]``: scalars first (TOML wants them before any
    sub-table), then sub-tables, then the commented-out optional and repeated tables."""
    fields = model.model_fields
    tables = {n: f for n, f in fields.items() if _submodel(f) is not None}
    lists = {n: f for n, f in fields.items() if _list_of_models(f) is not None}
    scalars = {n: f for n, f in fields.items() if n not in tables and n not in lists}
    if path:
        out.append(f"[{'.'.join(path)}]")
        doc = _doc(model)
        if doc:
            out.extend(_comment(doc))
    for name, info in scalars.items():
        out.extend(_scalar(name, info, at_root=not path))
    if path or scalars:
        out.append("")
    for name, info in tables.items():
        sub = _submodel(info)
        assert sub is not None
        if info.default is None:  # optional table: shown, commented out
            block: list[str] = []
            _model(sub, [*path, name], block)
            out.extend(_commented_block(info, block))
        else:
            _model(sub, [*path, name], out)
    for name, info in lists.items():
        item = _list_of_models(info)
        assert item is not None
        block = [f"[[{'.'.join([*path, name])}]]"]
        doc = _doc(item)
        if doc:
            block.extend(_comment(doc))
        for sub_name, sub_info in item.model_fields.items():
            block.extend(_scalar(sub_name, sub_info, at_root=False, required_placeholder=True))
        out.extend(_commented_block(info, block + [""]))


def _commented_block(info: FieldInfo, block: list[str]) -> list[str]:
    lines = _comment(info.description or "") if info.description else []
    lines += [line if line.startswith("#") or not line else f"# {line}" for line in block]
    return lines


def _scalar(name: str, info: FieldInfo, *, at_root: bool,
            required_placeholder: bool = False) -> list[str]:
    lines = _comment(_describe(info))
    if at_root and name in FLAG_ONLY:
        return [*lines, f"# {name}: only the --{name} flag sets it; the file may not", ""]
    default = _default(info)
    if default is PydanticUndefined:
        value = _placeholder(info.annotation)
        return [*lines, f"# {name} = {value}   (required)", ""]
    if default is None:
        return [*lines, f"# {name} = {_placeholder(info.annotation)}   (default: not set)", ""]
    line = f"{name} = {_toml(default)}"
    return [*lines, f"# {line}" if required_placeholder else line, ""]


def _describe(info: FieldInfo) -> str:
    text = info.description or ""
    choices = _literal_choices(info.annotation)
    if choices:
        text = f"{text} One of: {', '.join(choices)}.".strip()
    return text


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]  # no-argument factories only
    return info.default


def _toml(value: Any) -> str:
    """A TOML literal for a default: JSON's strings, numbers and arrays are TOML's too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    raise TypeError(f"no TOML form for the default {value!r}")


def _placeholder(annotation: Any) -> str:
    for arg in _non_none(annotation):
        if arg is Path:
            return '"/path/to/file"'
        if arg is str:
            return '"..."'
        if arg is int:
            return "0"
        if arg is float:
            return "0.0"
        if get_origin(arg) is list:
            return "[]"
        if get_origin(arg) is dict:
            return "{}"
        if get_origin(arg) is Literal:
            return json.dumps(get_args(arg)[0])
    return '"..."'


def _literal_choices(annotation: Any) -> list[str]:
    for arg in _non_none(annotation):
        if get_origin(arg) is Literal:
            return [json.dumps(a) for a in get_args(arg)]
    return []


def _non_none(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _submodel(info: FieldInfo) -> type[BaseModel] | None:
    for arg in _non_none(info.annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _list_of_models(info: FieldInfo) -> type[BaseModel] | None:
    for arg in _non_none(info.annotation):
        if get_origin(arg) is list:
            (item,) = get_args(arg)
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item
    return None


def _doc(model: type[BaseModel]) -> str:
    """The first paragraph of a model's docstring (its one-line meaning)."""
    doc = model.__doc__ or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ").replace("``", "`")


def _comment(text: str) -> list[str]:
    if not text:
        return []
    return textwrap.wrap(" ".join(text.split()), WIDTH - 2, initial_indent="# ",
                         subsequent_indent="# ", break_on_hyphens=False)


if __name__ == "__main__":
    print(render(), end="")
