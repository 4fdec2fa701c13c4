"""The ``pdp`` group imports a command's module when the command is looked up
(:mod:`pdp.cli.lazy_group`), and looks exactly as it did when ``pdp.cli.main`` imported
and registered every module at its top: the same commands in the same order, the same
help for each, the same panels. The eager app below is that old ``main.py``."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pdp.cli import main
from pdp.cli.lazy_group import Lazy, LazyCommands
from pdp.collector import paused
from tests.conftest import REPO

runner = CliRunner()


def eager_app() -> typer.Typer:
    """``pdp`` as main.py built it before its commands were lazy: every module imported
    and registered, in this order."""
    from pdp.cli import audit, bundle, check, config_cmd, context, grant, revoke, serve, task, token
    from pdp.cli.common import PANEL_ADMIN, PANEL_AUDIT, PANEL_AUTHOR, PANEL_SERVE
    from pdp.cli.impact import impact_command

    app = typer.Typer(
        no_args_is_help=True, rich_markup_mode="markdown",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        help="Policy decision point for machine identities (SPIFFE, JWT, Cedar).")
    app.callback()(main._root)
    serve.register(app)
    token.register(app)
    check.register(app)
    app.add_typer(config_cmd.app, name="config", rich_help_panel=PANEL_SERVE)
    bundle.register(app)
    app.command("impact", rich_help_panel=PANEL_AUTHOR)(impact_command)
    app.add_typer(audit.app, name="audit", rich_help_panel=PANEL_AUDIT)
    app.add_typer(context.app, name="context", rich_help_panel=PANEL_ADMIN)
    app.add_typer(revoke.app, name="revoke", rich_help_panel=PANEL_ADMIN)
    app.command("unrevoke", rich_help_panel=PANEL_ADMIN)(revoke.unrevoke)
    app.add_typer(grant.app, name="grant", rich_help_panel=PANEL_ADMIN)
    app.add_typer(task.app, name="task", rich_help_panel=PANEL_ADMIN)
    return app


def paths(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under ``group``, groups included, in listing order."""
    ctx = group.context_class(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name)
        if hasattr(command, "list_commands"):
            yield from paths(command, (*prefix, name))


def test_the_lazy_group_lists_the_eager_apps_commands_in_its_order() -> None:
    lazy = list(paths(typer.main.get_command(main.app)))
    eager = list(paths(typer.main.get_command(eager_app())))
    assert lazy == eager
    assert ("audit", "show") in lazy and ("context", "incident", "set") in lazy


def test_every_help_page_is_the_eager_apps() -> None:
    every = [(), *paths(typer.main.get_command(eager_app()))]
    for path in every:
        argv = [*path, "--help"]
        lazy = runner.invoke(main.app, argv, env={"COLUMNS": "120"})
        eager = runner.invoke(eager_app(), argv, env={"COLUMNS": "120"})
        assert (lazy.exit_code, lazy.output) == (eager.exit_code, eager.output), path


@pytest.mark.parametrize("argv", [["--version"], ["audt"], [], ["revoke"], ["bogus", "x"]])
def test_answers_without_a_command_are_the_eager_apps(argv: list[str]) -> None:
    lazy = runner.invoke(main.app, argv, env={"COLUMNS": "120"})
    eager = runner.invoke(eager_app(), argv, env={"COLUMNS": "120"})
    assert (lazy.exit_code, lazy.output) == (eager.exit_code, eager.output)


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO).stdout.strip()


def test_importing_the_command_imports_no_command_module() -> None:
    out = run_python("import sys, pdp.cli.main; print(sorted(m for m in sys.modules "
                     "if m.startswith(('pdp.', 'pydantic', 'fastapi', 'cedarpy'))))")
    assert out == "['pdp.cli', 'pdp.cli.lazy_group', 'pdp.cli.main', 'pdp.collector']"


def test_a_command_imports_its_own_module_only() -> None:
    code = ("import sys, typer, pdp.cli.main as m\n"
            "g = typer.main.get_command(m.app)\n"
            "assert g.get_command(g.context_class(g), 'token') is not None\n"
            "print(sorted(x for x in sys.modules if x.startswith('pdp.cli.')))")
    assert run_python(code) == ("['pdp.cli.common', 'pdp.cli.lazy_group', 'pdp.cli.main', "
                                "'pdp.cli.token']")


def test_a_module_registering_other_names_than_its_entry_lists_is_refused() -> None:
    def register(app: typer.Typer) -> None:
        @app.command("two")
        def _two() -> None: ...

    commands = LazyCommands((Lazy(("one",), register),), "markdown")
    assert list(commands) == ["one"]  # known without registering
    with pytest.raises(RuntimeError, match="registered"):
        commands["one"]
    assert "nope" not in commands and commands.get("nope") is None


def test_listing_the_names_imports_nothing() -> None:
    def register(app: typer.Typer) -> None:
        raise AssertionError("registered while only listing")

    commands = LazyCommands((Lazy(("a", "b"), register), Lazy(("c",), register)), None)
    assert list(commands) == ["a", "b", "c"] and len(commands) == 3


@pytest.mark.parametrize("enabled", [True, False])
def test_a_paused_collector_is_restored_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(ImportError), paused():
            import pdp.no_such_module  # noqa: F401
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
