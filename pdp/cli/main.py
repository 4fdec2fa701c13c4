"""The ``pdp`` command: one Typer app whose subcommands are imported when they run.

Each subcommand lives in its own module, which registers its commands with
``register(app)`` (or is a sub-app). :data:`COMMANDS` lists them in the order
``pdp --help`` shows them, each with the function that imports its module and registers
it; the group (:mod:`pdp.cli.lazy_group`) imports a module only when one of its commands
is looked up, so ``pdp serve`` imports the server and not ``pdp audit``'s readers, and
``--version`` imports none. The modules themselves defer the engine, the log and the
server to the command that needs them. (The help panels' names come from
:mod:`pdp.cli.common` inside each function too: it imports the settings' models.)
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pdp import __version__
from pdp.cli.lazy_group import Lazy, lazy_group


def _serve(app: typer.Typer) -> None:
    from pdp.cli import serve
    serve.register(app)


def _token(app: typer.Typer) -> None:
    from pdp.cli import token
    token.register(app)


def _check(app: typer.Typer) -> None:
    from pdp.cli import check
    check.register(app)


def _bundle(app: typer.Typer) -> None:
    from pdp.cli import bundle
    bundle.register(app)


def _impact(app: typer.Typer) -> None:
    from pdp.cli.common import PANEL_AUTHOR
    from pdp.cli.impact import impact_command
    app.command("impact", rich_help_panel=PANEL_AUTHOR)(impact_command)


def _unrevoke(app: typer.Typer) -> None:
    from pdp.cli import revoke
    from pdp.cli.common import PANEL_ADMIN
    app.command("unrevoke", rich_help_panel=PANEL_ADMIN)(revoke.unrevoke)


def _config(app: typer.Typer) -> None:
    from pdp.cli import config_cmd
    from pdp.cli.common import PANEL_SERVE
    app.add_typer(config_cmd.app, name="config", rich_help_panel=PANEL_SERVE)


def _audit(app: typer.Typer) -> None:
    from pdp.cli import audit
    from pdp.cli.common import PANEL_AUDIT
    app.add_typer(audit.app, name="audit", rich_help_panel=PANEL_AUDIT)


def _context(app: typer.Typer) -> None:
    from pdp.cli import context
    from pdp.cli.common import PANEL_ADMIN
    app.add_typer(context.app, name="context", rich_help_panel=PANEL_ADMIN)


def _revoke(app: typer.Typer) -> None:
    from pdp.cli import revoke
    from pdp.cli.common import PANEL_ADMIN
    app.add_typer(revoke.app, name="revoke", rich_help_panel=PANEL_ADMIN)


def _grant(app: typer.Typer) -> None:
    from pdp.cli import grant
    from pdp.cli.common import PANEL_ADMIN
    app.add_typer(grant.app, name="grant", rich_help_panel=PANEL_ADMIN)


def _task(app: typer.Typer) -> None:
    from pdp.cli import task
    from pdp.cli.common import PANEL_ADMIN
    app.add_typer(task.app, name="task", rich_help_panel=PANEL_ADMIN)


# In the order `pdp --help` lists them: serve and try, write policies, administer, audit
# (Typer lists commands before sub-apps: `unrevoke` before `config`).
COMMANDS: tuple[Lazy, ...] = (
    Lazy(("serve",), _serve),
    Lazy(("token",), _token),
    Lazy(("check",), _check),
    Lazy(("init", "validate", "test", "fmt", "schema"), _bundle),
    Lazy(("impact",), _impact),
    Lazy(("unrevoke",), _unrevoke),
    Lazy(("config",), _config),
    Lazy(("audit",), _audit),
    Lazy(("context",), _context),
    Lazy(("revoke",), _revoke),
    Lazy(("grant",), _grant),
    Lazy(("task",), _task),
)
"""Every ``pdp`` subcommand: the names each module registers, and how."""

app = typer.Typer(
    cls=lazy_group(COMMANDS),
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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
