"""Admin subcommands talk to a running PDP over HTTP: live state (grants,
incidents, revocations) must reach the server that enforces it.

The caller authenticates like any workload, with a short-lived credential (the
bundle's `admin.fresh-credential` policy refuses one issued over five minutes ago),
so the CLI obtains a fresh one for every call where it can, as kubectl's credential
plugins do. In order:

1. ``--token`` or ``PDP_ADMIN_TOKEN``: used as given (it expires: fine for one command);
2. ``--dev``: minted now by the local development issuer, as ``PDP_ADMIN_SPIFFE_ID``
   (default ``spiffe://example.org/ops/sre-console``), from the state directory
   ``pdp token`` would use (``PDP_STATE_DIR``, ``PDP_CONFIG``, else ``.pdp``);
3. ``PDP_ADMIN_TOKEN_COMMAND``: a command (split like a shell would, run without one)
   whose standard output is the token, e.g. a SPIRE agent call or a cloud CLI;
4. ``PDP_ADMIN_TOKEN_FILE``: a file holding the token, re-read every call (e.g. one
   that spiffe-helper keeps fresh).

With none of them an admin command fails naming ``--token`` / ``PDP_ADMIN_TOKEN``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from pdp.cli.common import fail, settings_from

UrlOpt = Annotated[str, typer.Option("--url", envvar="PDP_URL", help="The PDP's base URL.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="PDP_ADMIN_TOKEN", show_default=False,
    help="Bearer credential of the admin workload (or PDP_ADMIN_TOKEN; see also --dev, "
         "PDP_ADMIN_TOKEN_COMMAND, PDP_ADMIN_TOKEN_FILE).")]
AdminDevOpt = Annotated[bool, typer.Option(
    "--dev", help="Mint a fresh credential for each call from the local dev issuer "
                  "(trusted by `pdp serve --dev`), as PDP_ADMIN_SPIFFE_ID.")]
DEFAULT_URL = "http://127.0.0.1:8181"
DEV_ADMIN = "spiffe://example.org/ops/sre-console"
DEV_TTL_S = 60
NO_CREDENTIAL = ("no admin credential: give --token or set PDP_ADMIN_TOKEN (against "
                 "`pdp serve --dev`: add --dev; to fetch a fresh one per call: set "
                 "PDP_ADMIN_TOKEN_COMMAND or PDP_ADMIN_TOKEN_FILE)")


def credential(token: str | None, dev: bool = False) -> str:
    """The bearer credential for one admin call (see the module docstring for the order)."""
    if token:
        return token
    if dev:
        from pdp.identity.dev_issuer import DevIssuer  # deferred: only --dev needs the key

        settings = settings_from(_config_from_env())
        try:
            issuer = DevIssuer.load_or_create(settings.state_dir)
            return issuer.mint(os.environ.get("PDP_ADMIN_SPIFFE_ID", DEV_ADMIN),
                               ttl_s=DEV_TTL_S, audience=settings.audience)
        except (ValueError, PermissionError) as e:
            fail(f"--dev: {e}")
    if command := os.environ.get("PDP_ADMIN_TOKEN_COMMAND"):
        return _from_command(command)
    if path := os.environ.get("PDP_ADMIN_TOKEN_FILE"):
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            fail(f"PDP_ADMIN_TOKEN_FILE: cannot read {path}: {e}")
        if not text:
            fail(f"PDP_ADMIN_TOKEN_FILE: {path} is empty")
        return text
    fail(NO_CREDENTIAL)


def _config_from_env() -> Path | None:
    value = os.environ.get("PDP_CONFIG")
    return Path(value) if value else None


def _from_command(command: str) -> str:
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        fail(f"PDP_ADMIN_TOKEN_COMMAND {command!r} did not run: {e}")
    if done.returncode != 0:
        fail(f"PDP_ADMIN_TOKEN_COMMAND {command!r} exited {done.returncode}: "
             f"{done.stderr.strip()[:500]}")
    token = done.stdout.strip()
    if not token:
        fail(f"PDP_ADMIN_TOKEN_COMMAND {command!r} printed no token")
    return token


def call(method: str, url: str, path: str, token: str | None,
         body: dict[str, Any] | None = None, params: dict[str, Any] | None = None, *,
         cacert: Path | None = None) -> Any:
    """Send one admin request; print the problem and exit non-zero on refusal.

    ``cacert``: the CA bundle that signed an https PDP's certificate (its TLS listener).
    """
    import httpx  # deferred, as in pdp.identity.fetch.fetch (every command imports this)

    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url.rstrip("/") + path, json=body, params=params,
                                 headers=headers, timeout=10,
                                 verify=str(cacert) if cacert else True)
    except httpx.HTTPError as e:
        fail(f"cannot reach the PDP at {url}: {e}")
    try:
        data = response.json()
    except ValueError:
        data = {"detail": response.text}
    if response.status_code >= 400:
        detail = (data.get("detail") or data.get("title") if isinstance(data, dict) else None)
        hint = ""
        if response.status_code == 401 and token and token == os.environ.get("PDP_ADMIN_TOKEN"):
            hint = ("; PDP_ADMIN_TOKEN holds a short-lived token that may have expired: use "
                    "--dev, PDP_ADMIN_TOKEN_COMMAND or PDP_ADMIN_TOKEN_FILE for a fresh one "
                    "per call")
        fail(f"HTTP {response.status_code}: {detail or response.reason_phrase}{hint}")
    return data
