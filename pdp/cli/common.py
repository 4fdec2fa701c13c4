"""Options and helpers shared by the subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from pdp.config import Settings, load_settings

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="pdp.toml settings file.")]
DevOpt = Annotated[bool, typer.Option("--dev", help="Trust the local development issuer.")]
PoliciesOpt = Annotated[Path | None, typer.Option("--policies", help="Bundle directory [default: policies].")]
StateDirOpt = Annotated[Path | None, typer.Option("--state-dir", help="Local state [default: .pdp].")]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    """Settings from the file, PDP_* and the flags given (``False``/``None`` flags don't override)."""
    try:
        return load_settings(config, **{k: v for k, v in overrides.items()
                                        if v is not None and v is not False})
    except (FileNotFoundError, ValueError) as e:
        fail(f"configuration: {e}")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"pdp: {message}", err=True)
    raise typer.Exit(code)
