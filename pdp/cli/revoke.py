"""``pdp revoke ...`` and ``pdp unrevoke``: manage the live deny-list of a running PDP.

Revocations must reach the server that answers requests (and, with a shared
store, every replica), so these commands call its admin API
(``/v1/revocations``) with a bearer credential permitted by the bundle's admin
policies, exactly as any other admin client would::

    export PDP_ADMIN_TOKEN_COMMAND="..."   # or --token, or --dev against `pdp serve --dev`
    pdp revoke jti 0b7c...e1 --reason "token leaked in a CI log"
    pdp revoke spiffe-id spiffe://example.org/agents/reporter --reason compromised
    pdp revoke prefix spiffe://example.org/agents/ --expires 1h
    pdp revoke cert 1f:a0:33 --issuer "O=example.org intermediate"
    pdp revoke issuer-before example.org --before 2026-11-23T10:00:00Z
    pdp revoke list
    pdp unrevoke rev-4be3a0c19d2f7e61
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from pdp.cli.admin_client import AdminDevOpt, call, credential
from pdp.cli.common import fail, parse_duration, unique_match

app = typer.Typer(no_args_is_help=True, help="Revoke credentials or workloads on a running PDP.")

DEFAULT_URL = "http://127.0.0.1:8181"
UrlOpt = Annotated[str, typer.Option("--url", envvar="PDP_URL", help="The PDP's base URL.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="PDP_ADMIN_TOKEN",
    help="Bearer credential allowed identity.revoke (or PDP_ADMIN_TOKEN; see also --dev, "
         "PDP_ADMIN_TOKEN_COMMAND, PDP_ADMIN_TOKEN_FILE).", show_default=False)]
CaOpt = Annotated[Path | None, typer.Option("--cacert", help="CA bundle for an https PDP.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, for the audit trail.")]
ExpiresOpt = Annotated[str | None, typer.Option(
    "--expires", help="Stop applying after this long (5m, 1h, 7d) or at this ISO time.")]


def _call(url: str, token: str | None, cacert: Path | None, method: str, path: str,
          body: dict[str, Any] | None = None, *, dev: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = call(method, url, path, credential(token, dev), body,
                                  cacert=cacert)
    return answer


def _expires(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return (datetime.now(UTC) + timedelta(seconds=parse_duration(text))).isoformat()
    except typer.BadParameter:
        pass
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--expires {text!r}: a duration (5m, 1h, 7d) or an ISO time")
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def _revoke(url: str, token: str | None, cacert: Path | None, dev: bool, **body: Any) -> None:
    data = _call(url, token, cacert, "POST", "/v1/revocations",
                 {k: v for k, v in body.items() if v is not None}, dev=dev)
    entry = data["revocation"]
    verb = "revoked" if data.get("created") else "already revoked"
    typer.echo(f"{verb}: {entry['id']} ({entry['kind']} {entry['value']})", err=True)
    typer.echo(json.dumps(entry, indent=2))


@app.command("jti")
def revoke_jti(value: Annotated[str, typer.Argument(help="The token's jti.")],
               issuer: Annotated[str | None, typer.Option(help="Only tokens of this `iss`.")] = None,
               reason: ReasonOpt = "", expires: ExpiresOpt = None, url: UrlOpt = DEFAULT_URL,
               token: TokenOpt = None, cacert: CaOpt = None,
        dev: AdminDevOpt = False) -> None:
    """Refuse one token by its jti."""
    _revoke(url, token, cacert, dev, kind="jti", value=value, issuer=issuer, reason=reason,
            expires_at=_expires(expires))


@app.command("cert")
def revoke_cert(serial: Annotated[str, typer.Argument(help="Serial in hex (1f:a0 or 0x1fa0).")],
                issuer: Annotated[str, typer.Option(help="Issuer DN, as the decision log records it.")],
                reason: ReasonOpt = "", expires: ExpiresOpt = None, url: UrlOpt = DEFAULT_URL,
                token: TokenOpt = None, cacert: CaOpt = None,
                dev: AdminDevOpt = False) -> None:
    """Refuse one certificate by issuer and serial."""
    _revoke(url, token, cacert, dev, kind="cert", value=serial, issuer=issuer, reason=reason,
            expires_at=_expires(expires))


@app.command("spiffe-id")
def revoke_spiffe_id(spiffe_id: Annotated[str, typer.Argument(help="The workload's SPIFFE ID.")],
                     reason: ReasonOpt = "", expires: ExpiresOpt = None,
                     url: UrlOpt = DEFAULT_URL, token: TokenOpt = None,
                     cacert: CaOpt = None, dev: AdminDevOpt = False) -> None:
    """Refuse a workload, as subject and as actor, whatever its credential."""
    _revoke(url, token, cacert, dev, kind="spiffe_id", value=spiffe_id, reason=reason,
            expires_at=_expires(expires))


@app.command("prefix")
def revoke_prefix(prefix: Annotated[str, typer.Argument(help="spiffe://td or spiffe://td/path (/* optional).")],
                  reason: ReasonOpt = "", expires: ExpiresOpt = None,
                  url: UrlOpt = DEFAULT_URL, token: TokenOpt = None,
                  cacert: CaOpt = None, dev: AdminDevOpt = False) -> None:
    """Refuse every SPIFFE ID at or under a path."""
    _revoke(url, token, cacert, dev, kind="spiffe_prefix", value=prefix, reason=reason,
            expires_at=_expires(expires))


@app.command("issuer-before")
def revoke_issuer_before(
        issuer: Annotated[str, typer.Argument(help="An issuer (`iss`, or an X.509 issuer DN) or a trust domain.")],
        before: Annotated[str, typer.Option(help="ISO time: credentials issued earlier are refused.")],
        reason: ReasonOpt = "", expires: ExpiresOpt = None, url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None, cacert: CaOpt = None,
        dev: AdminDevOpt = False) -> None:
    """Refuse everything an issuer or trust domain issued before a time."""
    try:
        at = datetime.fromisoformat(before.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--before {before!r} is not an ISO time")
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    _revoke(url, token, cacert, dev, kind="issued_before", value=issuer, before=at.isoformat(),
            reason=reason, expires_at=_expires(expires))


@app.command("list")
def list_revocations(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None,
                     cacert: CaOpt = None, dev: AdminDevOpt = False,
                     as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The revocations in force."""
    data = _call(url, token, cacert, "GET", "/v1/revocations", dev=dev)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for e in data["revocations"]:
        scope = f" issuer={e['issuer']}" if e.get("issuer") else ""
        scope += f" before={e['before']}" if e.get("before") else ""
        scope += f" expires={e['expires_at']}" if e.get("expires_at") else ""
        typer.echo(f"{e['id']}  {e['kind']:<13} {e['value']}{scope}  "
                   f"by {e.get('created_by') or '?'}: {e.get('reason') or ''}")
    typer.echo(f"{len(data['revocations'])} revocation(s)", err=True)


def unrevoke(revocation_id: Annotated[str, typer.Argument(help="The id shown by `pdp revoke list`, or a unique prefix of it.")],
             url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, cacert: CaOpt = None,
             dev: AdminDevOpt = False) -> None:
    """Lift a revocation (recorded in the decision log)."""
    bearer = credential(token, dev)  # one credential for both calls
    listed = _call(url, bearer, cacert, "GET", "/v1/revocations")
    revocation_id = unique_match(revocation_id, [e["id"] for e in listed["revocations"]],
                                 "revocation")
    data = _call(url, bearer, cacert, "DELETE", f"/v1/revocations/{revocation_id}")
    typer.echo(f"lifted: {data['removed']['id']}", err=True)
    typer.echo(json.dumps(data["removed"], indent=2))


__all__ = ["app", "unrevoke"]
