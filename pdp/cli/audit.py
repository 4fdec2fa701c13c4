"""``pdp audit ...``: read the decision log."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from pdp.cli.common import ConfigOpt, StateDirOpt, settings_from

app = typer.Typer(no_args_is_help=True, help="Read the decision log.")


@app.command()
def tail(
    n: Annotated[int, typer.Option("-n", "--lines", help="How many decisions.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Print the latest decisions, oldest first."""
    from pdp.audit.factory import open_decision_log

    settings = settings_from(config, state_dir=state_dir)
    log = open_decision_log(settings.audit.backend, sqlite_path=settings.sqlite_path)
    try:
        records = log.tail(n)  # type: ignore[attr-defined]
    finally:
        log.close()
    if as_json:
        for record in records:
            typer.echo(json.dumps(record, sort_keys=True))
        return
    _table(records)


def _table(records: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("time", "decision", "principal", "action", "resource", "why", "decision_id")
    for r in records:
        table.add_row(str(r.get("timestamp", ""))[:23], str(r.get("decision") or r.get("kind")),
                      str(r.get("principal") or "-"), str(r.get("action") or "-"),
                      str(r.get("resource") or "-"), str(r.get("explanation") or ""),
                      str(r.get("decision_id")))
    Console(width=200).print(table)
