"""Options, parsers and helpers shared by the subcommands.

Nothing here imports the engine, the log or the server: ``pdp --help`` and shell
completion import every subcommand module (:mod:`pdp.cli.main`), and should answer at once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from pdp.config import Settings, load_settings

# Help panels, in the order `pdp --help` shows them.
PANEL_SERVE = "Serve and try"
PANEL_AUTHOR = "Write policies"
PANEL_AUDIT = "Audit"
PANEL_ADMIN = "Administer a running PDP"

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", envvar="PDP_CONFIG",
    help="pdp.toml settings file (or PDP_CONFIG). Every command reads it the same way, so "
         "`pdp serve`, `pdp token` and `pdp audit` agree on state_dir and the log.",
    show_default=False)]
DevOpt = Annotated[bool, typer.Option("--dev", help="Trust the local development issuer.")]
PoliciesOpt = Annotated[Path | None, typer.Option(
    "--policies", help="Bundle directory.", show_default="policies")]
StateDirOpt = Annotated[Path | None, typer.Option(
    "--state-dir", help="Local state: dev keys, the SQLite log (or PDP_STATE_DIR).",
    show_default=".pdp")]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    """Settings from the file, PDP_* and the flags given (``False``/``None`` flags don't override)."""
    try:
        return load_settings(config, **{k: v for k, v in overrides.items()
                                        if v is not None and v is not False})
    except (FileNotFoundError, ValueError) as e:
        fail(f"configuration: {e}")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``pdp: message`` on stderr and exit with ``code``."""
    typer.echo(f"pdp: {message}", err=True)
    raise typer.Exit(code)


_DURATION = re.compile(r"(\d+)([smhd]?)")


def parse_duration(text: str) -> int:
    """``300``, ``90s``, ``5m``, ``1h``, ``1d`` -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 300, 90s, 5m, 1h")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(match.group(1)) * unit


def parse_resource(text: str) -> tuple[str, str]:
    """``App::Dataset::sales-daily`` or ``App::Dataset::"sales-daily"`` -> (type, id)."""
    quoted = re.fullmatch(r'(.+)::"(.*)"', text)
    if quoted:
        return quoted.group(1), json.loads(f'"{quoted.group(2)}"')
    type_, sep, id_ = text.rpartition("::")
    if not sep or not type_ or not id_:
        fail(f"resource {text!r}: write Type::id, e.g. App::Dataset::sales-daily")
    return type_, id_


MIN_PREFIX = 4
"""Shortest id prefix taken (git's minimum, too)."""


def unique_match(given: str, ids: list[str], what: str) -> str:
    """``given`` if it is one of ``ids``, else the one id that starts with it (as git takes a
    commit's prefix); exits naming the candidates when several do, and when none does."""
    if given in ids:
        return given
    if len(given) < MIN_PREFIX:
        fail(f"no {what} with id {given} (a prefix needs at least {MIN_PREFIX} characters)")
    matches = sorted(i for i in ids if i.startswith(given))
    if not matches:
        fail(f"no {what} with id {given}, nor one whose id starts with it")
    if len(matches) > 1:
        fail(f"{given!r} is ambiguous; it starts:\n  " + "\n  ".join(matches))
    return matches[0]
