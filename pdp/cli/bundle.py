"""``pdp validate|test|fmt|schema|init``: the policy author's commands, on a bundle directory.

The engine is imported inside each command: ``pdp --help`` and shell completion import
this module too and should not load Cedar and the decision code for nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pdp.cli import scaffold
from pdp.cli.common import PANEL_AUTHOR, ConfigOpt, fail, settings_from

DirArg = Annotated[Path, typer.Argument(help="Bundle directory.")]


def validate(directory: DirArg = Path("policies")) -> None:
    """Validate a bundle: schema, every policy against it, @id/@reason, entities."""
    from pdp.engine.bundle import load_bundle  # deferred: module docstring
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


def test_bundle(
    directory: DirArg = Path("policies"),
    config: ConfigOpt = None,
    coverage: Annotated[bool, typer.Option("--coverage", help="Report policies and conditions the suites never exercise.")] = False,
    min_coverage: Annotated[float | None, typer.Option("--min-coverage", help="Fail below this coverage percent (implies --coverage).", show_default=False)] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML for CI systems.", show_default=False)] = None,
) -> None:
    """Run the bundle's tests/*.yaml; one line per failure, then `N passed, M failed`.

    The files are checked against the suite schema first: an unknown key, an unknown
    policy id or a wrong type is an error with file and line, and the run fails.
    """
    from context.calendar import BusinessCalendar  # deferred: module docstring
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


def fmt(directory: DirArg = Path("policies"),
        check: Annotated[bool, typer.Option("--check", help="Only report files that would change.")] = False) -> None:
    """Format the bundle's *.cedar files with Cedar's own formatter."""
    import cedarpy  # deferred: module docstring

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


def schema() -> None:
    """Print the Pdp namespace the PDP merges into every bundle's schema."""
    from pdp.engine.pdp_schema import pdp_schema_cedar  # deferred: module docstring

    typer.echo(pdp_schema_cedar().replace("__cedar::", ""))


def init(directory: Annotated[Path, typer.Argument(help="Where to create the bundle (new or empty).")]) -> None:
    """Scaffold a bundle: schema, annotated policies, entities.json, tests, and a CI
    workflow running `pdp fmt --check`, `pdp validate`, `pdp test --coverage`, `pdp impact`."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        fail(f"{directory} exists and is not an empty directory; nothing written")
    for name, text in scaffold.FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    typer.echo(f"created a bundle in {directory}: " + ", ".join(scaffold.FILES))
    typer.echo(f"next: pdp test {directory} --coverage; "
               f"pdp serve --dev --policies {directory}")


def register(app: typer.Typer) -> None:
    for command, name in ((init, "init"), (validate, "validate"), (test_bundle, "test"),
                          (fmt, "fmt"), (schema, "schema")):
        app.command(name, rich_help_panel=PANEL_AUTHOR)(command)
