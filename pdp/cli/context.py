"""``pdp context show|version|incident set|incident clear|risk set`` on a running PDP.

Live context must reach the server that enforces it (and, with Redis, every
replica), so these commands call the admin API over HTTP as a workload:
``--token`` or ``PDP_ADMIN_TOKEN``, authorized by the bundle's own policies.
For a dev setup::

    pdp context incident set --dev --scope resource_tag:pii --level critical --reason leak --for 1h

(``--dev`` mints a fresh credential per call; see :mod:`pdp.cli.admin_client` for the others.)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from pdp.cli.admin_client import DEFAULT_URL, AdminDevOpt, TokenOpt, UrlOpt, call, credential
from pdp.cli.common import parse_duration

app = typer.Typer(no_args_is_help=True,
                  help="Live context: incidents, risk levels, business hours (admin API).")
incident_app = typer.Typer(no_args_is_help=True, help="Declare and end incidents.")
risk_app = typer.Typer(no_args_is_help=True, help="Set global or per-principal risk.")
app.add_typer(incident_app, name="incident")
app.add_typer(risk_app, name="risk")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
ForOpt = Annotated[str | None, typer.Option("--for", help="Lifetime: 900, 30m, 2h, 1d.")]
UntilOpt = Annotated[datetime | None, typer.Option(
    "--until", help="End time, ISO 8601 with a zone (2026-11-23T18:00:00Z).",
    formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"])]


@app.command()
def show(
    principal: Annotated[str | None, typer.Option(help="Also show what a decision for this "
                                                       "principal would see.")] = None,
    resource_type: Annotated[str | None, typer.Option(help="... about this resource type.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="... with this tag (repeatable).")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    dev: AdminDevOpt = False,
) -> None:
    """The context in force: incidents, risk levels (with sources, ages, evidence)."""
    params: dict[str, Any] = {}
    if principal:
        params["principal"] = principal
    if resource_type:
        params["resource_type"] = resource_type
    if tag:
        params["resource_tag"] = tag
    body = call("GET", url, "/v1/context", credential(token, dev), params=params or None)
    typer.echo(json.dumps(body, indent=2) if as_json else render(body))


@app.command()
def version(url: UrlOpt = DEFAULT_URL) -> None:
    """The context version and status (no credential needed)."""
    body = call("GET", url, "/v1/context/version", None)
    typer.echo(f"{body['version']} {body['status']}")


@incident_app.command("set")
def incident_set(
    reason: Annotated[str, typer.Option(help="Why (goes into the log and explanations).")],
    scope: Annotated[str, typer.Option(help="global | trust_domain:<td> | spiffe_prefix:<spiffe://td/path> "
                                            "| resource_type:<Type> | resource_tag:<tag>")] = "global",
    level: Annotated[str, typer.Option(help="minor | major | critical (or 1-3).")] = "major",
    incident_id: Annotated[str | None, typer.Option("--id", help="Your id (e.g. a ticket); "
                                                                "same id replaces.")] = None,
    for_: ForOpt = None,
    until: UntilOpt = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    dev: AdminDevOpt = False,
) -> None:
    """Declare incident mode for a scope."""
    body: dict[str, Any] = {"scope": scope, "level": level, "reason": reason}
    if incident_id:
        body["id"] = incident_id
    if for_:
        body["duration_s"] = parse_duration(for_)
    if until:
        body["ends_at"] = until.isoformat()
    answer = call("POST", url, "/v1/context/incidents", credential(token, dev), body)
    i = answer["incident"]
    typer.echo(f"declared {i['id']}: {i['level_name']} incident for {i['scope']}"
               f"{' until ' + i['ends_at'] if i['ends_at'] else ''} (context version "
               f"{answer['version']})")


@incident_app.command("clear")
def incident_clear(
    incident_id: Annotated[str | None, typer.Argument(help="The incident's id.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="End every incident.")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    dev: AdminDevOpt = False,
) -> None:
    """End one incident (by id) or, with --all, every incident."""
    if (incident_id is None) == (not all_):
        raise typer.BadParameter("give an incident id or --all")
    path = "/v1/context/incidents" + (f"/{incident_id}" if incident_id else "")
    answer = call("DELETE", url, path, credential(token, dev))
    ended = ", ".join(i["id"] for i in answer["cleared"]) or "nothing"
    typer.echo(f"ended {ended} (context version {answer['version']})")


@risk_app.command("set")
def risk_set(
    level: Annotated[str, typer.Argument(help="low | medium | high | critical (or 0-3).")],
    reason: Annotated[str, typer.Option(help="Why (goes into the log).")],
    principal: Annotated[str | None, typer.Option(help="A principal; omit for the global "
                                                       "level.")] = None,
    for_: ForOpt = None,
    until: UntilOpt = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    dev: AdminDevOpt = False,
) -> None:
    """Set the global risk level, or one principal's (low clears it and any automatic raise)."""
    body: dict[str, Any] = {"level": level, "reason": reason}
    if principal:
        body["principal"] = principal
    if for_:
        body["ttl_s"] = parse_duration(for_)
    if until:
        body["expires_at"] = until.isoformat()
    answer = call("PUT", url, "/v1/context/risk", credential(token, dev), body)
    who = answer["principal"] or "global"
    risk = answer["risk"]
    until_text = f" until {risk['expires_at']}" if risk and risk.get("expires_at") else ""
    typer.echo(f"{who} risk set to {_RISK[answer['level']]}{until_text} "
               f"(context version {answer['version']})")


_RISK = ("low", "medium", "high", "critical")


def render(body: dict[str, Any]) -> str:
    """``GET /v1/context`` for people."""
    store = body["store"]
    age = f"{store['age_s']:.1f} s" if store["age_s"] is not None else "never"
    lines = [f"context version {body['version']}  at {body['now']}",
             f"store: {store['backend']} {store['source']}  {store['status']}"
             f"  (confirmed {age} ago{', ' + store['error'] if store['error'] else ''})"]
    if store["stale"]:
        lines.append(f"  stale, defaults in use: {', '.join(store['stale'])}")
    lines.append("incidents:" if body["incidents"] else "incidents: none")
    for i in body["incidents"]:
        lines.append(f"  {i['id']}  {i['level_name']:8}  {i['scope']}  \"{i['reason']}\"  "
                     f"by {i['set_by'] or i['source']}  {i['since_set_s']:.0f} s ago"
                     f"{'  until ' + i['ends_at'] if i['ends_at'] else ''}")
    risk = body["risk"]
    g = risk["global"]
    entry = g["entry"]
    lines.append(f"global risk: {g['level_name']} ({g['level']})  "
                 + (f"\"{entry['reason']}\" by {entry['set_by']}, until {entry['expires_at']}"
                    if entry else f"from {g['source']}"))
    lines.append("principal risk:" if risk["principals"] else "principal risk: none raised")
    for pid, parts in sorted(risk["principals"].items()):
        lines.append(f"  {pid}: {_RISK[parts['level']]}")
        for kind in ("manual", "automatic"):
            if kind in parts:
                e = parts[kind]
                text = e["reason"] if kind == "manual" else "; ".join(e["evidence"])
                lines.append(f"    {kind}: {_RISK[e['level_now']]} (set {e['level_name']}) "
                             f"\"{text}\" by {e['set_by']}, {e['since_set_s']:.0f} s ago")
    hours = body["business_hours"]
    lines.append(f"business hours ({hours['timezone']}): {'open' if hours['open'] else 'closed'}"
                 f"{', changes at ' + hours['next_change'] if hours['next_change'] else ''}")
    if "snapshot" in body:
        s = body["snapshot"]
        lines.append(f"snapshot: incident_level {s['incident_level']}, risk_level "
                     f"{s['risk_level']} (global {s['global_risk_level']}, principal "
                     f"{s['principal_risk_level']}), business_hours {s['business_hours']}, "
                     f"degraded {s['degraded'] or 'no'}, valid until {s['valid_until']}")
        lines += [f"  note: {n}" for n in s["notes"]]
    return "\n".join(lines)


__all__ = ["app", "render"]
