"""``pdp task list|complete``: the credential broker's tasks on a running PDP.

``list`` shows live tasks (``--all``: completed ones too) with every credential
issued for each: who it names, who acts through it (the delegation chain), its
audience, scope and expiry. ``complete`` ends a task: every credential issued
for it is refused from the next request on, on every replica. The caller
authenticates with ``--token`` / ``PDP_ADMIN_TOKEN``: the task's owner to
complete it, a workload the bundle lets ``broker.tasks.read`` to list.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from pdp.cli.admin_client import DEFAULT_URL, TokenOpt, UrlOpt, call

app = typer.Typer(no_args_is_help=True,
                  help="Broker tasks: credentials that expire with the job (docs/agents.md).")


@app.command("list")
def list_(all_: Annotated[bool, typer.Option("--all", help="Include completed tasks.")] = False,
          as_json: Annotated[bool, typer.Option("--json", help="Print the raw answer.")] = False,
          url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """List tasks and their credentials."""
    tasks = call("GET", url, "/v1/tasks", token,
                 params={"include_completed": str(all_).lower()})["tasks"]
    if as_json:
        typer.echo(json.dumps(tasks, indent=2))
        return
    if not tasks:
        typer.echo("no live tasks" if not all_ else "no tasks")
    for task in tasks:
        typer.echo(format_task(task))


@app.command()
def complete(task_id: Annotated[str, typer.Argument(help="The task's id.")],
             url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Complete a task: revoke every credential issued for it, on every replica."""
    task = call("POST", url, f"/v1/tasks/{task_id}/complete", token)
    typer.echo(f"completed {task['id']} at {task['completed_at']}: "
               f"{len(task['credentials'])} credential(s) revoked")


def format_task(task: dict[str, Any]) -> str:
    """A task and its credentials, one line each, for people."""
    state = "live" if task["live"] else f"completed {task['completed_at']}"
    lines = [f"{task['id']}  {state}  owner {task['owner']}  \"{task['purpose']}\""]
    for c in task["credentials"]:
        chain = " <- ".join(c["actor_chain"]) if c["actor_chain"] else "(itself)"
        lines.append(f"  {c['jti']}  {c['subject']} via {chain} -> {c['audience']}  "
                     f"[{' '.join(c['scopes'])}]  until {c['expires_at']}")
    return "\n".join(lines)
