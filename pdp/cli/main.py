"""The ``pdp`` command. Every subcommand runs on the same code as the service."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pdp.cli import audit as audit_cli
from pdp.cli import context as context_cli
from pdp.cli import grant as grant_cli
from pdp.cli import revoke as revoke_cli
from pdp.cli.common import ConfigOpt, DevOpt, PoliciesOpt, StateDirOpt, fail, settings_from
from pdp.cli.impact import impact_command

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Policy decision point for machine identities (SPIFFE, JWT, Cedar).")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(grant_cli.app, name="grant")
app.add_typer(revoke_cli.app, name="revoke")
app.add_typer(context_cli.app, name="context")
app.command("unrevoke")(revoke_cli.unrevoke)
app.command("impact")(impact_command)


@app.command()
def serve(
    dev: DevOpt = False,
    policies: PoliciesOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: 8181].")] = None,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate chain (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Private key of --tls-cert (PEM).")] = None,
    client_ca_bundle: Annotated[Path | None, typer.Option("--client-ca-bundle", help="Ask PEPs for a client certificate from these CAs; its X.509-SVID is the PEP's identity.")] = None,
    client_cert_required: Annotated[bool, typer.Option("--client-cert-required", help="Refuse TLS clients without a certificate.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes; they share the port, the decision log (one chain) and /metrics [default: 1].")] = 1,
) -> None:
    """Serve the HTTP API (``--dev``: trust a local issuer for example.org)."""
    import uvicorn

    from pdp.api.app import create_app
    from pdp.api.pep import check_pep_allowlist
    from pdp.api.tls import uvicorn_tls_options
    from pdp.audit.errors import AuditError
    from pdp.components import build_components
    from pdp.engine.problems import BundleInvalid
    from pdp.identity.trust_bundle import BundleError

    settings = settings_from(config, dev=dev, policies=policies, host=host, port=port,
                             state_dir=state_dir, tls_cert=tls_cert, tls_key=tls_key,
                             client_ca_bundle=client_ca_bundle,
                             client_cert_required=client_cert_required)
    try:
        tls = uvicorn_tls_options(settings)
        peps = check_pep_allowlist(settings)  # secure by default: empty refuses to start
        # --workers N: each worker builds its own; this one is a dry run that checks the
        # configuration and creates the shared state (dev keys, the log's schema) once.
        components = build_components(settings) if workers == 1 else prepare_workers(settings)
    except BundleInvalid as e:
        fail(str(e))
    except (BundleError, ValueError) as e:  # trust bundles, issuers, TLS, PEP allowlist
        fail(f"configuration: {e}")
    except AuditError as e:  # the decision log cannot be opened (PostgreSQL down, ...)
        fail(f"decision log: {e}")
    bundle = components.bundles.current
    typer.echo(f"pdp: serving bundle {components.bundles.source.label} ({bundle.version.label if bundle else '?'}) "
               f"on http://{settings.host}:{settings.port}", err=True)
    typer.echo(f"pdp: decision log: {settings.audit.backend} "
               f"{settings.sqlite_path if settings.audit.backend == 'sqlite' else ''}", err=True)
    if settings.audit.backend == "memory":  # docs/context.md, "Durable state"
        typer.echo("pdp: warning: audit backend memory: revocations, incidents, risk and "
                   "grants are not durable either; a restart forgets them", err=True)
    context_health = getattr(components.live, "health", None)  # docs/context.md
    if context_health is not None:
        ctx = context_health()
        typer.echo(f"pdp: live context: {ctx['backend']} {ctx['source']} ({ctx['status']})",
                   err=True)
    if settings.dev:
        typer.echo(DEV_BANNER.format(state_dir=settings.state_dir), err=True)
    if tls:
        typer.echo(f"pdp: TLS on; PEP client certificates "
                   f"{'asked for' if settings.client_ca_bundle else 'not asked for'}", err=True)
    typer.echo(f"pdp: PEPs that may ask for decisions: {peps}", err=True)
    if workers > 1:
        components.close()
        run_workers(settings, workers, tls)
        return
    uvicorn.run(create_app(components, freeze_gc=True), host=settings.host, port=settings.port,
                log_level="warning", access_log=False, **tls)  # decisions are logged, not requests


DEV_BANNER = """\
pdp: ************************************************************************
pdp: *  WARNING: DEVELOPMENT MODE (--dev). NEVER USE IT IN PRODUCTION.      *
pdp: ************************************************************************
pdp:  - trusts the local development issuer for spiffe://example.org: anyone
pdp:    who can read {state_dir}/dev can mint any workload's token
pdp:  - any caller may ask for decisions (the PEP allowlist is not enforced)
pdp:  - signs audit checkpoints with a development key
pdp:  mint a token:  pdp token --spiffe-id spiffe://example.org/services/etl
pdp: ************************************************************************"""
"""Printed by ``pdp serve --dev``: dev mode is only ever turned on by that flag."""


def prepare_workers(settings: Any) -> Any:
    """Check ``settings`` as a worker will use them, creating the state workers share.

    Builds the components once with an in-memory log (the bundle, trust sources,
    dev issuer are checked and created here, not raced by the workers), opens the
    configured decision log once (its schema) and creates the ``--dev`` checkpoint
    key. Returns those components, for the banner; close them before serving.
    """
    from pdp.audit.chain.checkpoint import checkpoint_private_key
    from pdp.audit.factory import open_configured_log
    from pdp.audit.memory import MemoryDecisionLog
    from pdp.components import build_components

    open_configured_log(settings, spool=False).close()
    checkpoint_private_key(settings)
    return build_components(settings, log=MemoryDecisionLog())


def run_workers(settings: Any, workers: int, tls: dict[str, Any]) -> None:
    """Serve with ``workers`` uvicorn processes (``pdp.api.app:app_from_env``), each on its
    own ``SO_REUSEPORT`` socket (see :mod:`pdp.cli.workers`).

    Each worker reads the resolved settings from ``PDP_SERVE_SETTINGS_JSON`` and
    keeps its metric values in a fresh ``PROMETHEUS_MULTIPROC_DIR`` under the state
    directory (removed on exit), so ``/metrics`` sums them whichever worker answers.
    """
    import os
    import shutil
    import tempfile

    from pdp.api.app import SETTINGS_ENV
    from pdp.api.tls import HTTP_PROTOCOL_IMPORT
    from pdp.cli import workers as worker_processes

    if settings.context.backend == "memory":
        typer.echo(f"pdp: {workers} workers: revocations, incidents, risk and grants are "
                   f"shared through the decision log's store within {settings.context.resync_s:g} s; "
                   "automatic risk raises are per worker ([context] backend = \"redis\" "
                   "shares everything at once)", err=True)
    if "http" in tls:  # client certificates: the protocol class by import string (pickled)
        tls = {**tls, "http": HTTP_PROTOCOL_IMPORT}
    own_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="metrics-", dir=_metrics_parent(settings.state_dir))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by the spawned workers
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    try:
        status = worker_processes.run(settings.host, settings.port, workers,
                                      {"log_level": "warning", "access_log": False, **tls})
    except OSError as e:  # the port is taken
        fail(f"cannot listen on {settings.host}:{settings.port}: {e}")
    finally:
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    if status:
        raise typer.Exit(status)


def _metrics_parent(state_dir: Path) -> Path:
    path = state_dir / "metrics"
    path.mkdir(parents=True, exist_ok=True)
    return path


@app.command()
def token(
    spiffe_id: Annotated[str, typer.Option("--spiffe-id", help="Subject, e.g. spiffe://example.org/services/etl.")],
    audience: Annotated[str, typer.Option(help="Audience (the PDP's `audience`).")] = "pdp",
    ttl: Annotated[str, typer.Option(help="Lifetime: 300, 90s, 5m, 1h.")] = "5m",
    scope: Annotated[list[str] | None, typer.Option(help="A scope; repeat for several.")] = None,
    state_dir: StateDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print a JWT-SVID signed by the local development issuer (trusted only with --dev)."""
    from pdp.identity.dev_issuer import DevIssuer

    settings = settings_from(config, state_dir=state_dir)
    issuer = DevIssuer.load_or_create(settings.state_dir)
    try:
        typer.echo(issuer.mint(spiffe_id, audience=audience, ttl_s=parse_duration(ttl),
                               scopes=list(scope or [])))
    except ValueError as e:
        fail(str(e))


@app.command()
def validate(directory: Annotated[Path, typer.Argument(help="Bundle directory.")] = Path("policies")) -> None:
    """Validate a bundle: schema, every policy against it, @id/@reason, entities."""
    from pdp.engine.bundle import load_bundle
    from pdp.engine.problems import BundleInvalid

    try:
        bundle = load_bundle(directory)
    except BundleInvalid as e:
        fail(str(e))
    for warning in bundle.warnings:
        typer.echo(f"warning: {warning}", err=True)
    templates = sum(p.is_template for p in bundle.policies.values())
    typer.echo(f"ok: {directory} is valid: {len(bundle.policies) - templates} policies, "
               f"{templates} templates, {len(bundle.actions.by_uid)} actions, "
               f"version {bundle.version.label}")


@app.command("test")
def test_bundle(
    directory: Annotated[Path, typer.Argument(help="Bundle directory.")] = Path("policies"),
    config: ConfigOpt = None,
    coverage: Annotated[bool, typer.Option("--coverage", help="Report policies and conditions the suites never exercise.")] = False,
    min_coverage: Annotated[float | None, typer.Option("--min-coverage", help="Fail below this coverage percent (implies --coverage).")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML for CI systems.")] = None,
) -> None:
    """Run the bundle's tests/*.yaml; one line per failure, then `N passed, M failed`."""
    from context.calendar import BusinessCalendar
    from pdp.authoring.coverage import CoverageTracker
    from pdp.authoring.policytests import SuiteError, run_suites, write_junit
    from pdp.engine.bundle import load_bundle
    from pdp.engine.problems import BundleInvalid

    settings = settings_from(config)
    calendar = BusinessCalendar.from_strings(**settings.live.business_hours.model_dump())
    try:
        bundle = load_bundle(directory)
        tracker = CoverageTracker(bundle) if coverage or min_coverage is not None else None
        report = run_suites(bundle, calendar=calendar, coverage=tracker)
    except (BundleInvalid, SuiteError) as e:
        fail(str(e))
    for result in report.results:
        if not result.passed:
            typer.echo(f"FAIL {result.suite}: {result.description}: {'; '.join(result.problems)}")
    if junit is not None:
        write_junit(report, junit)
    below = False
    if tracker is not None:
        covered = tracker.report()
        typer.echo("\n".join(covered.lines()))
        below = min_coverage is not None and covered.percent < min_coverage
        if below:
            typer.echo(f"coverage {covered.percent:.1f}% is below --min-coverage {min_coverage}")
    typer.echo(f"{report.passed} passed, {report.failed} failed")
    if report.failed or not report.results or below:
        raise typer.Exit(1)


@app.command()
def fmt(directory: Annotated[Path, typer.Argument(help="Bundle directory.")] = Path("policies"),
        check: Annotated[bool, typer.Option("--check", help="Only report files that would change.")] = False) -> None:
    """Format the bundle's *.cedar files with Cedar's own formatter."""
    import cedarpy

    changed = []
    for path in sorted(directory.glob("*.cedar")):
        text = path.read_text()
        try:
            formatted = cedarpy.format_policies(text, 80, 2).rstrip("\n") + "\n"
        except ValueError as e:
            fail(f"{path}: {e}")
        if formatted != text:
            changed.append(path)
            if not check:
                path.write_text(formatted)
    verb = "would reformat" if check else "reformatted"
    for path in changed:
        typer.echo(f"{verb} {path}")
    if check and changed:
        raise typer.Exit(1)
    if not changed:
        typer.echo("all files formatted")


@app.command()
def schema() -> None:
    """Print the Pdp namespace the PDP merges into every bundle's schema."""
    from pdp.engine.pdp_schema import pdp_schema_cedar

    typer.echo(pdp_schema_cedar().replace("__cedar::", ""))


@app.command()
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
    """One decision in-process; prints the same JSON as the API."""
    from pdp.cli.check import run_check

    settings = settings_from(config, dev=dev, policies=policies, state_dir=state_dir)
    body = _check_body(action, resource, token, context, input_file)
    decision = run_check(settings, body, principal=principal)
    typer.echo(json.dumps(decision, indent=2))
    raise typer.Exit(0 if decision["decision"] == "allow" else 2)


def _check_body(action: str | None, resource: str | None, token: str | None,
                context: str | None, input_file: Path | None) -> dict[str, Any]:
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


def parse_resource(text: str) -> tuple[str, str]:
    """``App::Dataset::sales-daily`` or ``App::Dataset::"sales-daily"`` -> (type, id)."""
    quoted = re.fullmatch(r'(.+)::"(.*)"', text)
    if quoted:
        return quoted.group(1), json.loads(f'"{quoted.group(2)}"')
    type_, sep, id_ = text.rpartition("::")
    if not sep or not type_ or not id_:
        fail(f"resource {text!r}: write Type::id, e.g. App::Dataset::sales-daily")
    return type_, id_


_DURATION = re.compile(r"(\d+)([smhd]?)")


def parse_duration(text: str) -> int:
    """``300``, ``90s``, ``5m``, ``1h``, ``1d`` -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 300, 90s, 5m, 1h")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(match.group(1)) * unit


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
