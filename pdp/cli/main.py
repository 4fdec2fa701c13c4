"""The ``pdp`` command: one Typer app, each subcommand module registering its commands.

Every subcommand runs on the same code as the service. The modules are imported here at
the top and each adds its commands with ``register(app)`` (or is a sub-app), so nothing
below imports inside a function; the modules themselves defer the engine, the log and
the server to the command that needs them, so that ``--help``, ``--version`` and shell
completion answer at once.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pdp import __version__
from pdp.cli import audit as audit_cli
from pdp.cli import bundle as bundle_cli
from pdp.cli import check as check_cli
from pdp.cli import config_cmd as config_cli
from pdp.cli import context as context_cli
from pdp.cli import grant as grant_cli
from pdp.cli import revoke as revoke_cli
from pdp.cli import serve as serve_cli
from pdp.cli import task as task_cli
from pdp.cli import token as token_cli
from pdp.cli.common import PANEL_ADMIN, PANEL_AUDIT, PANEL_AUTHOR, PANEL_SERVE
from pdp.cli.impact import impact_command

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="markdown",  # `code` in help renders as code; no reST ``markup`` shown
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Policy decision point for machine identities (SPIFFE, JWT, Cedar).")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pdp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Policy decision point for machine identities (SPIFFE, JWT, Cedar)."""


# In the order `pdp --help` lists them: serve and try, write policies, audit, administer.
serve_cli.register(app)
token_cli.register(app)
check_cli.register(app)
app.add_typer(config_cli.app, name="config", rich_help_panel=PANEL_SERVE)
bundle_cli.register(app)
app.command("impact", rich_help_panel=PANEL_AUTHOR)(impact_command)
app.add_typer(audit_cli.app, name="audit", rich_help_panel=PANEL_AUDIT)
app.add_typer(context_cli.app, name="context", rich_help_panel=PANEL_ADMIN)
app.add_typer(revoke_cli.app, name="revoke", rich_help_panel=PANEL_ADMIN)
app.command("unrevoke", rich_help_panel=PANEL_ADMIN)(revoke_cli.unrevoke)
app.add_typer(grant_cli.app, name="grant", rich_help_panel=PANEL_ADMIN)
app.add_typer(task_cli.app, name="task", rich_help_panel=PANEL_ADMIN)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
