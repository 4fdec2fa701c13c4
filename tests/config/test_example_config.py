"""pdp.example.toml: generated from the settings model, loads, equals the defaults, names
every key; and a mistyped key anywhere in pdp.toml is refused, naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from pdp.config import Settings, load_settings
from pdp.config_example import render
from tests.conftest import REPO

EXAMPLE = REPO / "pdp.example.toml"


@pytest.fixture(autouse=True)
def _no_pdp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("PDP_")]:
        monkeypatch.delenv(key)


def test_the_file_is_the_generators_output() -> None:
    assert EXAMPLE.read_text() == render(), \
        "regenerate: .venv/bin/python -m pdp.config_example > pdp.example.toml"


def test_it_loads_to_exactly_the_defaults() -> None:
    assert load_settings(EXAMPLE).model_dump() == Settings().model_dump()


def _keys(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for arg in getattr(info.annotation, "__args__", (info.annotation,)):
            for inner in getattr(arg, "__args__", (arg,)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _keys(inner)
    return names


def test_every_key_of_the_model_is_in_it_with_its_meaning() -> None:
    text = EXAMPLE.read_text()
    for key in _keys(Settings):
        assert f"{key} =" in text or f"[{key}]" in text or f"{key}]" in text \
            or f"# {key}:" in text, key
    assert "# Decision log store" in text  # descriptions come along


@pytest.mark.parametrize("table, key", [("", "listen_port"), ("audit", "backnd"),
                                        ("context.behaviour", "windw_s"), ("log", "fromat")])
def test_a_mistyped_key_anywhere_is_refused_naming_it(tmp_path: Path, table: str,
                                                      key: str) -> None:
    path = tmp_path / "pdp.toml"
    path.write_text((f"[{table}]\n" if table else "") + f"{key} = 1\n")
    with pytest.raises(ValueError, match=key):
        load_settings(path)


def test_dev_without_routes_gets_the_example_table_and_an_explicit_table_wins(
        tmp_path: Path) -> None:
    from pdp.gateway.example_routes import EXAMPLE_ROUTES

    assert [r.model_dump(exclude={"context"}) for r in load_settings(dev=True).routes] == \
        list(EXAMPLE_ROUTES)
    assert load_settings().routes == []
    path = tmp_path / "pdp.toml"
    path.write_text("routes = []\n")
    assert load_settings(path, dev=True).routes == []


def _doc_toml_blocks() -> list[tuple[str, int, str]]:
    import re

    found = []
    for doc in [*REPO.glob("*.md"), *(REPO / "docs").glob("*.md")]:
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S)):
            found.append((doc.name, i, block))
    return found


@pytest.mark.parametrize("where, index, block", _doc_toml_blocks(),
                         ids=[f"{d}#{i}" for d, i, _ in _doc_toml_blocks()])
def test_every_toml_example_in_the_docs_is_valid_configuration(where: str, index: int,
                                                               block: str) -> None:
    import tomllib

    Settings.model_validate(tomllib.loads(block))  # unknown keys, wrong types: an error
