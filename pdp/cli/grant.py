"""``pdp grant create|list|revoke``: time-boxed, task-scoped grants on a running PDP."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pdp.cli.admin_client import DEFAULT_URL, AdminDevOpt, TokenOpt, UrlOpt, call, credential
from pdp.cli.common import parse_duration, parse_resource, unique_match

app = typer.Typer(no_args_is_help=True, help="Task grants: a template linked until an expiry.")


@app.command()
def create(
    template: Annotated[str, typer.Option(help="Template @id, e.g. grant.dataset.read.")],
    principal: Annotated[str, typer.Option(help="Workload, e.g. spiffe://example.org/agents/reporter.")],
    resource: Annotated[str, typer.Option(help="Type::id, e.g. App::Dataset::ledger.")],
    ttl: Annotated[str, typer.Option(help="Lifetime: 900, 15m, 2h.")] = "15m",
    task: Annotated[str, typer.Option(help="The task it is for, e.g. T-123.")] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    dev: AdminDevOpt = False,
) -> None:
    """Grant ``principal`` the template's action on ``resource`` for ``ttl``."""
    type_, id_ = parse_resource(resource)
    if not task:
        raise typer.BadParameter("say which task the grant is for (--task)")
    grant = call("POST", url, "/v1/grants", credential(token, dev), {
        "template": template, "principal": principal, "resource": {"type": type_, "id": id_},
        "ttl_s": parse_duration(ttl), "task": task})
    typer.echo(json.dumps(grant, indent=2))


@app.command("list")
def list_(all_: Annotated[bool, typer.Option("--all", help="Include expired and revoked.")] = False,
          url: UrlOpt = DEFAULT_URL, token: TokenOpt = None,
          dev: AdminDevOpt = False) -> None:
    """List grants (active ones unless --all)."""
    for g in call("GET", url, "/v1/grants", credential(token, dev),
                  params={"include_inactive": str(all_).lower()})["grants"]:
        state = "active" if g["active"] else ("revoked" if g["revoked_at"] else "expired")
        typer.echo(f"{g['id']}  {state:8} {g['template']}  {g['principal']} -> "
                   f"{g['resource']['type']}::{g['resource']['id']}  until {g['expires_at']}  "
                   f"task {g['task']}")


@app.command()
def revoke(grant_id: Annotated[str, typer.Argument(help="The grant's id, or a unique prefix of it.")],
           url: UrlOpt = DEFAULT_URL, token: TokenOpt = None,
           dev: AdminDevOpt = False) -> None:
    """Revoke a grant now."""
    bearer = credential(token, dev)
    active = [g["id"] for g in call("GET", url, "/v1/grants", bearer)["grants"]]
    grant_id = unique_match(grant_id, active, "active grant")
    grant = call("DELETE", url, f"/v1/grants/{grant_id}", bearer)
    typer.echo(f"revoked {grant['id']} at {grant['revoked_at']}")
