"""Admin subcommands talk to a running PDP over HTTP: live state (grants,
incidents, revocations) must reach the server that enforces it.

The caller authenticates like any workload: ``--token`` or ``PDP_ADMIN_TOKEN``
(for a dev setup: ``pdp token --spiffe-id spiffe://example.org/ops/sre-console``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from pdp.cli.common import fail

UrlOpt = Annotated[str, typer.Option("--url", envvar="PDP_URL", help="The PDP's base URL.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="PDP_ADMIN_TOKEN", help="Bearer credential of the admin workload.")]
DEFAULT_URL = "http://127.0.0.1:8181"


def call(method: str, url: str, path: str, token: str | None,
         body: dict[str, Any] | None = None, params: dict[str, Any] | None = None, *,
         cacert: Path | None = None) -> Any:
    """Send one admin request; print the problem and exit non-zero on refusal.

    ``cacert``: the CA bundle that signed an https PDP's certificate (its TLS listener).
    """
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
        fail(f"HTTP {response.status_code}: {detail or response.reason_phrase}")
    return data
