"""``pdp config show``: the effective configuration (defaults, file, ``PDP_*``, flags),
with secrets masked so that the output can be pasted into a ticket."""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer

from pdp.cli.common import ConfigOpt, StateDirOpt, settings_from

app = typer.Typer(no_args_is_help=True, help="The effective configuration.")

MASK = "***"
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_key|credential)s?$", re.I)
_DSN_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.I)


def mask_secrets(value: Any, key: str = "") -> Any:
    """``value`` with every secret replaced by ``***``: values of keys named like a secret,
    the password in a URL's user part (``redis://:pw@host``, ``postgresql://u:pw@h/db``,
    ``https://user:token@git.example``) and ``password=...`` in a libpq key/value DSN."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if _SECRET_KEY.search(key):
        return MASK
    masked = _DSN_PASSWORD.sub(lambda m: m.group(1) + MASK, value)
    try:
        parts = urlsplit(masked)
        password = parts.password
    except ValueError:  # not a URL after all (e.g. an unbalanced IPv6 bracket)
        return masked
    if password:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        masked = urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
    return masked


@app.command()
def show(config: ConfigOpt = None, state_dir: StateDirOpt = None) -> None:
    """Print the effective configuration as JSON, secrets masked; stderr says where it came from."""
    settings = settings_from(config, state_dir=state_dir)
    variables = sorted(k for k in os.environ if k.startswith("PDP_") and k != "PDP_CONFIG")
    typer.echo(f"pdp: from defaults, {f'the file {config}' if config else 'no config file'}"
               f"{', ' + ', '.join(variables) if variables else ''}"
               f"{', --state-dir' if state_dir else ''}", err=True)
    typer.echo(json.dumps(mask_secrets(settings.model_dump(mode="json")), indent=2))
