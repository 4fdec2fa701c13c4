"""``pdp token``: development credentials from the local issuer and CA (``pdp serve --dev``).

It finds its keys exactly where the server does: ``state_dir`` from ``--state-dir``,
``PDP_STATE_DIR``, ``--config``/``PDP_CONFIG``, else ``.pdp`` in the current directory
(:func:`pdp.cli.common.settings_from`, the same rules as ``pdp serve``). Every run says
on stderr which key signed and which server trusts it, and warns when the key was
created by this very run, since no server running then can trust it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pdp.cli.common import PANEL_SERVE, ConfigOpt, StateDirOpt, fail, parse_duration, settings_from
from pdp.identity.dev_issuer import KEY_FILE, DevIssuer
from pdp.identity.dev_x509 import CA_KEY_FILE, mint_x509_svid


def token(
    spiffe_id: Annotated[str, typer.Option("--spiffe-id", help="Subject, e.g. spiffe://example.org/services/etl.")],
    audience: Annotated[str, typer.Option(help="Audience (the PDP's `audience`).")] = "pdp",
    ttl: Annotated[str, typer.Option(help="Lifetime: 300, 90s, 5m, 1h.")] = "5m",
    scope: Annotated[list[str] | None, typer.Option(help="A scope; repeat for several.")] = None,
    x509: Annotated[bool, typer.Option("--x509", help="An X.509-SVID (PEM) from the dev CA instead of a JWT-SVID.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="With --x509: write svid.pem and svid-key.pem (mTLS) into this directory instead of printing the certificate.")] = None,
    state_dir: StateDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print a dev JWT-SVID (or, with `--x509`, an X.509-SVID) that `pdp serve --dev` trusts."""
    settings = settings_from(config, state_dir=state_dir)
    where = settings.state_dir.resolve()
    ttl_s = parse_duration(ttl)
    if x509:
        created = not (settings.state_dir / CA_KEY_FILE).exists()
        try:
            svid = mint_x509_svid(settings.state_dir, spiffe_id, ttl_s=ttl_s)
        except (ValueError, PermissionError) as e:
            fail(str(e))
        _say_which(f"dev CA {where / CA_KEY_FILE}", where, created)
        if out is None:
            typer.echo(svid.chain_pem, nl=False)
            return
        out.mkdir(parents=True, exist_ok=True)
        (out / "svid.pem").write_text(svid.chain_pem)
        key_path = out / "svid-key.pem"
        key_path.touch(mode=0o600)
        key_path.write_text(svid.key_pem)
        typer.echo(f"wrote {out / 'svid.pem'} and {key_path} ({svid.spiffe_id}, serial "
                   f"{svid.serial_hex})", err=True)
        return
    if out is not None:
        fail("--out is for --x509 certificates; a JWT-SVID is printed")
    created = not (settings.state_dir / KEY_FILE).exists()
    try:
        issuer = DevIssuer.load_or_create(settings.state_dir)
        minted = issuer.mint(spiffe_id, audience=audience, ttl_s=ttl_s, scopes=list(scope or []))
    except (ValueError, PermissionError) as e:
        fail(str(e))
    _say_which(f"dev issuer key {issuer.kid} ({where / KEY_FILE})", where, created)
    typer.echo(minted)


def _say_which(key: str, state_dir: Path, created: bool) -> None:
    typer.echo(f"pdp: signed by the {key}; trusted by `pdp serve --dev` with state_dir "
               f"{state_dir}", err=True)
    if created:
        typer.echo(f"pdp: warning: that key was created just now, so no server running yet "
                   f"trusts it: start `pdp serve --dev --state-dir {state_dir}`, or give this "
                   "command the --config/--state-dir of the running server", err=True)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL_SERVE)(token)
