"""``pdp serve``: the HTTP API, served by supervised workers (one by default) or in one process.

A supervisor (:mod:`pdp.cli.workers`) holds the listening sockets and the bundle, and
forks the workers that serve; a reload is its job, so the workers never load a bundle
beside their own traffic (a 10,000-policy load in the serving process made p99 6-9x
while it ran: bench/RESULTS.md, "Issue 16, round 5"). That is also what one worker
gets, unless the server must be one process (:func:`in_process_reason`).

The server's modules (uvicorn, FastAPI, the engine, the log) are imported inside the
command, not at the top: ``pdp --help`` and shell completion import this module too, and
should not pay a second and a half for a server they never start.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from pdp.cli import workers as worker_processes
from pdp.cli.common import (
    PANEL_SERVE,
    ConfigOpt,
    DevOpt,
    PoliciesOpt,
    StateDirOpt,
    fail,
    settings_from,
)
from pdp.collector import paused
from pdp.config import Settings


def serve(
    dev: DevOpt = False,
    policies: PoliciesOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address.", show_default="127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.", show_default="8181")] = None,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate chain (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Private key of --tls-cert (PEM).")] = None,
    client_ca_bundle: Annotated[Path | None, typer.Option("--client-ca-bundle", help="Ask PEPs for a client certificate from these CAs; its X.509-SVID is the PEP's identity.")] = None,
    client_cert_required: Annotated[bool, typer.Option("--client-cert-required", help="Refuse TLS clients without a certificate.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes; they share the port, the decision log (one chain) and /metrics.")] = 1,
    in_process: Annotated[bool, typer.Option("--in-process", help="Serve from this one process, without a supervisor (--workers 1 only): a reload loads beside the traffic and slows decisions while it runs.")] = False,
) -> None:
    """Serve the HTTP API (`--dev`: trust a local issuer for example.org)."""
    with paused():  # one collection, freeze_imported_modules' (pdp.collector)
        import uvicorn  # deferred: see the module docstring

        from pdp.api.app import freeze_imported_modules
        from pdp.api.pep import check_pep_allowlist
        from pdp.api.svid_tls import svid_tls_for
        from pdp.api.tls import uvicorn_tls_options
        from pdp.audit.errors import AuditError
        from pdp.engine.problems import BundleInvalid
        from pdp.identity.dev_x509 import with_dev_x509_trust
        from pdp.identity.trust_bundle import BundleError
        from pdp.server import create_app

        # Before the bundle's million objects (see its docstring), and before the
        # collector is back on: no pass walks the imports between them and the freeze.
        freeze_imported_modules()
    settings = settings_from(config, dev=dev, policies=policies, host=host, port=port,
                             state_dir=state_dir, tls_cert=tls_cert, tls_key=tls_key,
                             client_ca_bundle=client_ca_bundle,
                             client_cert_required=client_cert_required)
    if settings.dev:  # the dev CA's X.509-SVIDs (`pdp token --x509`) are trusted too
        settings = with_dev_x509_trust(settings)
    svid_tls = None
    try:
        tls = uvicorn_tls_options(settings)
        peps = check_pep_allowlist(settings)  # secure by default: empty refuses to start
        if settings.tls_workload_api and workers > 1:
            raise ValueError("tls_workload_api serves with one worker only (--workers 1)")
        if in_process and workers > 1:
            raise ValueError("--in-process serves with one worker only (--workers 1)")
        single = in_process_reason(settings, in_process) if workers == 1 else None
        components = build_for_serving(settings, supervised=single is None)
        if settings.tls_workload_api:  # the PDP's own X.509-SVID, rotated in place
            svid_tls = svid_tls_for(settings, components.verifier.workload_api)
            tls = svid_tls.uvicorn_options(settings)
    except BundleInvalid as e:
        fail(str(e))
    except (BundleError, ValueError) as e:  # trust bundles, issuers, TLS, PEP allowlist
        fail(f"configuration: {e}")
    except AuditError as e:  # the decision log cannot be opened (PostgreSQL down, ...)
        fail(f"decision log: {e}")
    try:  # a busy port is reported now, before any "serving" line
        listener = _bind(settings) if single is not None else None
        if single is None:
            worker_processes.check_port_free(settings.host, settings.port)
    except OSError as e:
        components.close()
        fail(f"cannot listen on {settings.host}:{settings.port}: {e.strerror or e}")
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
        typer.echo(dev_banner(settings, config), err=True)
    if tls:
        typer.echo(f"pdp: TLS on; PEP client certificates "
                   f"{'asked for' if settings.client_ca_bundle else 'not asked for'}", err=True)
    typer.echo(f"pdp: PEPs that may ask for decisions: {peps}", err=True)
    if single is not None:
        typer.echo(f"pdp: one process ({single}): a reload loads beside the traffic", err=True)
    if listener is None:
        components.close()
        run_workers(settings, workers, tls)
        return
    if svid_tls is not None:  # the SSL context must be at hand to take rotated SVIDs
        svid_tls.serve(create_app(components, freeze_gc=True), settings.host, settings.port,
                       sockets=[listener], log_level="warning", access_log=False, **tls)
        return
    if "http" not in tls:  # else the client-certificate listener's, which does the same
        from pdp.api.drain import draining_protocol_class  # each answer in one write

        tls = {**tls, "http": draining_protocol_class()}
    server = uvicorn.Server(uvicorn.Config(
        create_app(components, freeze_gc=True), host=settings.host, port=settings.port,
        log_level="warning", access_log=False, **tls))  # the app logs requests ([log], requestlog)
    server.run(sockets=[listener])


def in_process_reason(settings: Settings, asked: bool) -> str | None:
    """Why one worker must be served from this process, not by a supervised worker; None
    when nothing needs that (the default: reloads are the supervisor's, see the module).

    - ``--in-process``: asked for (one process less, and the supervisor's share of memory);
    - ``tls_workload_api``: the server's own X.509-SVID is rotated into the live SSL context
      of the process that serves (:mod:`pdp.api.svid_tls`);
    - ``[audit] backend = "memory"``: the administrators' state (revocations, grants) lives
      in the serving process only; a worker replaced at a reload would forget it.
    """
    if asked:
        return "--in-process"
    if settings.tls_workload_api:
        return "tls_workload_api rotates its certificate in the serving process"
    if settings.audit.backend == "memory":
        return "[audit] backend = \"memory\" keeps revocations in the serving process"
    return None


def _bind(settings: Settings) -> socket.socket:
    """The listening socket, bound now so that a busy port fails before the banner."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def pdp_command() -> str:
    """How this ``pdp`` was started, so that printed hints run as shown (``.venv/bin/pdp``,
    ``pdp``, or ``python -m pdp.cli.main``)."""
    argv0 = sys.argv[0] if sys.argv else "pdp"
    if Path(argv0).name == "pdp":
        return shlex.quote(argv0)
    return f"{shlex.quote(sys.executable)} -m pdp.cli.main"


def dev_banner(settings: Settings, config: Path | None) -> str:
    """The warning ``pdp serve --dev`` prints, with commands that work from any directory."""
    pdp = pdp_command()
    state_dir = shlex.quote(str(settings.state_dir.resolve()))
    flags = f"--state-dir {state_dir}"
    env = f"PDP_STATE_DIR={state_dir}"
    if config is not None:
        quoted = shlex.quote(str(config.resolve()))
        flags, env = f"--config {quoted} {flags}", f"PDP_CONFIG={quoted} {env}"
    return DEV_BANNER.format(
        state_dir=settings.state_dir.resolve(),
        token=f"{pdp} token {flags} --spiffe-id spiffe://example.org/services/etl",
        admin=f"{env} {pdp} context show --dev --url http://{settings.host}:{settings.port}")


DEV_BANNER = """\
pdp: ************************************************************************
pdp: *  WARNING: DEVELOPMENT MODE (--dev). NEVER USE IT IN PRODUCTION.      *
pdp: ************************************************************************
pdp:  - trusts the local development issuer for spiffe://example.org: anyone
pdp:    who can read {state_dir}/dev can mint any workload's token
pdp:  - any caller may ask for decisions (the PEP allowlist is not enforced)
pdp:  - signs audit checkpoints with a development key
pdp:  mint a token:  {token}
pdp:  admin command: {admin}
pdp: ************************************************************************"""
"""Printed by ``pdp serve --dev``: dev mode is only ever turned on by that flag."""


def build_for_serving(settings: Settings, *, supervised: bool) -> Any:
    """The components ``pdp serve`` starts with, their bundle frozen
    (:func:`pdp.api.app.freeze_loaded_bundle`), so that the full collections to come do
    not walk it again: the one before the app serves (``freeze_startup_objects``) or the
    one before the workers fork.

    ``supervised`` (workers under a supervisor, one or more): each worker builds its own;
    these are a dry run that checks the configuration and creates the shared state (dev
    keys, the log's schema) once (:func:`prepare_workers`).
    """
    from pdp.api.app import freeze_loaded_bundle  # deferred: module docstring
    from pdp.components import build_components

    if supervised:
        return prepare_workers(settings)
    with paused():  # until the bundle is frozen: see prepare_workers
        components = build_components(settings)
        freeze_loaded_bundle()
    return components


def prepare_workers(settings: Settings) -> Any:
    """Check ``settings`` as a worker will use them, creating the state workers share.

    Builds the components once with an in-memory log (the bundle, trust sources,
    dev issuer are checked and created here, not raced by the workers), opens the
    configured decision log once (its schema) and creates the ``--dev`` checkpoint
    key. The loaded bundle is offered to the workers, which are forked from this
    process (:func:`pdp.engine.store.preload`): it is parsed once, not once per worker;
    the app is built once too, for what the libraries keep of it.
    Returns those components, for the banner; close them before serving.
    """
    from pdp.api.app import freeze_loaded_bundle  # deferred: module docstring
    from pdp.audit.chain.checkpoint import checkpoint_private_key
    from pdp.audit.factory import open_configured_log
    from pdp.audit.memory import MemoryDecisionLog
    from pdp.components import build_components
    from pdp.server import create_app

    open_configured_log(settings, spool=False).close()
    from pdp.engine.store import preload

    checkpoint_private_key(settings)
    # The collector stays off from the first load (pdp.engine.store.BundleStore.load_initial)
    # until its objects are frozen: turned back on in between, with the load's million
    # objects all in its youngest generation, it walked them twice before the freeze
    # (a young pass as the load returned, then one of the middle generation while the
    # archive stored the bundle: ~0.35 s at 10,000 policies), where the freeze's own
    # young collection walks them once.
    with paused():
        components = build_components(settings, log=MemoryDecisionLog())
        freeze_loaded_bundle()  # before the app below, which is dropped: see build_for_serving
    preload(components.bundles.current)
    # Built once here and dropped, so that what building an app leaves behind in the
    # libraries' and modules' own state (built lazily, on first use) is built before the
    # fork and shared, not once in each worker: 10-13 MB less for two workers at 10,000
    # policies (bench/RESULTS.md, "hmem"). Starts nothing: the app's threads start in
    # its lifespan, which only a worker runs (tests/cli/test_prepare_workers.py).
    create_app(components)
    return components


def run_workers(settings: Settings, workers: int, tls: dict[str, Any]) -> None:
    """Serve with ``workers`` uvicorn processes (``pdp.server.supervised_app``), each on
    its slot's ``SO_REUSEPORT`` socket, under a supervisor that owns reloads (see
    :mod:`pdp.cli.workers`).

    Each worker reads the resolved settings from ``PDP_SERVE_SETTINGS_JSON`` and
    keeps its metric values in a fresh ``PROMETHEUS_MULTIPROC_DIR`` under the state
    directory (removed on exit), so ``/metrics`` sums them whichever worker answers.
    """
    from pdp.api.tls import HTTP_PROTOCOL_IMPORT
    from pdp.components import bundle_source, validation_cache, watch_interval_s
    from pdp.engine.store import BundleStore
    from pdp.server import SETTINGS_ENV  # deferred: module docstring

    if settings.context.backend == "memory" and workers > 1:
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
    # The supervisor's own store: the bundle prepare_workers loaded (preloaded), reloaded
    # by the supervisor alone (pdp.cli.workers).
    bundles = BundleStore(bundle_source(settings), validation_cache=validation_cache(settings),
                          answer_memo_bytes=settings.answer_memo_bytes)
    bundles.load_initial()
    try:
        status = worker_processes.run(
            settings.host, settings.port, workers,
            {"log_level": "warning", "access_log": False, **tls}, bundles,
            watch_interval_s(settings) if settings.watch_policies else None)
    except OSError as e:  # the port was taken meanwhile
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


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL_SERVE)(serve)
