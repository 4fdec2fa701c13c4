"""``pdp check``: one decision in-process, through the same service as the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import jwt
import typer
from pydantic import ValidationError

from pdp.cli.common import (
    PANEL_SERVE,
    ConfigOpt,
    DevOpt,
    PoliciesOpt,
    StateDirOpt,
    fail,
    parse_resource,
    settings_from,
)
from pdp.config import Settings
from pdp.identity.dev_issuer import DEV_TRUST_DOMAIN, KEY_FILE


def check(
    action: Annotated[str | None, typer.Option(help="Action, e.g. read.")] = None,
    resource: Annotated[str | None, typer.Option(help='Resource: App::Dataset::sales-daily or App::Dataset::"x".')] = None,
    token: Annotated[str | None, typer.Option(help="A credential to verify, as the API would.")] = None,
    principal: Annotated[str | None, typer.Option(help="Assert a principal instead of a token (policy debugging).")] = None,
    context: Annotated[str | None, typer.Option(help="The PEP's context as JSON.")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help="A /v1/authorize JSON body.")] = None,
    dev: DevOpt = False,
    policies: PoliciesOpt = None,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """One decision in-process; prints the same JSON as the API (exit 0 allow, 2 deny)."""
    settings = settings_from(config, dev=dev, policies=policies, state_dir=state_dir)
    body = check_body(action, resource, token, context, input_file)
    decision = run_check(settings, body, principal=principal)
    typer.echo(json.dumps(decision, indent=2))
    if (hint := dev_token_hint(settings, body, decision)) is not None:
        typer.echo(f"pdp: hint: {hint}", err=True)
    raise typer.Exit(0 if decision["decision"] == "allow" else 2)


def check_body(action: str | None, resource: str | None, token: str | None,
               context: str | None, input_file: Path | None) -> dict[str, Any]:
    """The /v1/authorize body the options describe (or ``--input`` holds)."""
    if input_file is not None:
        try:
            body = json.loads(input_file.read_text())
        except (OSError, ValueError) as e:
            fail(f"--input: {e}")
        if not isinstance(body, dict):
            fail("--input: a JSON object like the /v1/authorize body")
        return body
    if action is None or resource is None:  # "" is an action name Cedar accepts
        fail("give --action and --resource (or --input FILE)")
    type_, id_ = parse_resource(resource)
    body = {"action": action, "resource": {"type": type_, "id": id_}}
    if token:
        body["subject"] = {"token": token}
    if context:
        try:
            body["context"] = json.loads(context)
        except ValueError as e:
            fail(f"--context is not JSON: {e}")
    return body


def dev_token_hint(settings: Settings, body: dict[str, Any],
                   decision: dict[str, Any]) -> str | None:
    """What to do when a dev token (``pdp token``) was refused because ``--dev`` was not given.

    Only the token's unverified header and subject are read, to word the hint: the decision
    was made on the verified credential, as always.
    """
    codes = decision.get("reason_codes") or []
    subject = body.get("subject")
    raw = subject.get("token") if isinstance(subject, dict) else None
    if settings.dev or not isinstance(raw, str) or not any(
            str(c).startswith("identity.") for c in codes):
        return None
    try:
        header = jwt.get_unverified_header(raw)
        claims = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    if not str(claims.get("sub", "")).startswith(f"spiffe://{DEV_TRUST_DOMAIN}/"):
        return None
    key_path = settings.state_dir / KEY_FILE
    if key_path.exists():
        from pdp.identity.dev_issuer import DevIssuer  # reads the key only to compare kids

        if DevIssuer.load_or_create(settings.state_dir).kid == header.get("kid"):
            return ("this token was minted by the development issuer (`pdp token`); "
                    "add --dev to trust it, as `pdp serve --dev` does")
        return (f"this token is not signed by the dev issuer key in {key_path.resolve()}; "
                "give --state-dir/--config of the `pdp token` that minted it, and --dev")
    return (f"a token of {DEV_TRUST_DOMAIN} is trusted only with --dev (and the dev key of "
            "its state_dir: give --state-dir/--config as for `pdp token`)")


def run_check(settings: Settings, body: dict[str, Any], *, principal: str | None) -> dict[str, Any]:
    """Decide ``body`` (a /v1/authorize body). With ``principal``, assert the identity instead
    of verifying a credential: for policy authors debugging a bundle, never for enforcement."""
    # deferred: the API models, engine and log take a second to import (see pdp.cli.serve)
    from pdp.api.models import AuthorizeRequest
    from pdp.audit.memory import MemoryDecisionLog
    from pdp.components import build_components
    from pdp.engine.problems import BundleInvalid
    from pdp.identity.dev_x509 import with_dev_x509_trust

    if settings.dev:
        settings = with_dev_x509_trust(settings)
    try:
        components = build_components(settings, log=MemoryDecisionLog())
    except BundleInvalid as e:
        fail(str(e))
    try:
        if principal is not None:
            return _asserted(components, body, principal)
        try:
            request = AuthorizeRequest.model_validate(body)
        except ValidationError as e:
            fail(f"invalid request: {e}")
        return components.service.authorize_sync(
            request.to_input(request_id=None, pep="cli")).as_dict()
    finally:
        components.close()


def _asserted(components: Any, body: dict[str, Any], principal: str) -> dict[str, Any]:
    from pdp.api.models import AuthorizeItem  # deferred: as in run_check
    from pdp.authoring.policytests import case_identity
    from pdp.decision.decide import decide

    try:
        item = AuthorizeItem.model_validate({k: v for k, v in body.items() if k != "subject"})
    except ValidationError as e:
        fail(f"invalid request: {e}")
    now = components.clock.now()
    identity = case_identity({"principal": principal, "credential": {"age_s": 0}}, now)
    decision = decide(components.bundles.current, identity=identity, action=item.action,
                      resource=item.resource.to_ref(), context=item.context,
                      live=components.live.snapshot(identity.principal_id, now), now=now)
    out = decision.as_dict()
    out["asserted"] = True
    return out


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL_SERVE)(check)
