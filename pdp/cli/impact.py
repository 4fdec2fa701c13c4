"""``pdp impact``: the decisions a candidate bundle would change (for policy pull requests)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pdp.cli.common import ConfigOpt, StateDirOpt, fail, settings_from

if TYPE_CHECKING:
    from pdp.config import Settings


def impact_command(
    candidate: Annotated[str, typer.Option("--candidate", help="A bundle directory, or a git ref (branch, tag, commit) of the repository holding DIR.")],
    directory: Annotated[Path, typer.Argument(help="The current bundle directory.")] = Path("policies"),
    since: Annotated[str | None, typer.Option(help="Logged decisions from: ISO time, or 7d / 24h ago.")] = None,
    until: Annotated[str | None, typer.Option(help="Logged decisions before: ISO time, or 1d ago.")] = None,
    sample: Annotated[int | None, typer.Option(help="Replay a random sample of this many logged decisions.")] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Only the test suites, not the decision log.")] = False,
    fail_on: Annotated[str, typer.Option(help="Exit 1 on flips: any | allow-to-deny | deny-to-allow | none.")] = "any",
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Decide the test suites and logged decisions under DIR and under the candidate;
    report every decision that flips, grouped by policy and principal."""
    from context.calendar import BusinessCalendar  # deferred: the engine is heavy (pdp.cli.serve)
    from pdp.authoring.impact import FailOn, impact, parse_when, select_records
    from pdp.authoring.policytests import SuiteError
    from pdp.engine.bundle import load_bundle
    from pdp.engine.problems import BundleInvalid

    flips_that_fail: FailOn
    match fail_on:
        case "any" | "allow-to-deny" | "deny-to-allow" | "none":
            flips_that_fail = fail_on
        case _:
            fail(f"--fail-on {fail_on!r}: any, allow-to-deny, deny-to-allow or none")
    settings = settings_from(config, state_dir=state_dir)
    with tempfile.TemporaryDirectory(prefix="pdp-impact-") as tmp:
        try:
            current = load_bundle(directory)
            proposed = load_bundle(_candidate_directory(candidate, directory, Path(tmp)))
        except BundleInvalid as e:
            fail(str(e))
        records = [] if no_log else select_records(
            _logged(settings), since=parse_when(since), until=parse_when(until), sample=sample)
        calendar = BusinessCalendar.from_strings(**settings.live.business_hours.model_dump())
        try:
            report = impact(current, proposed, records=records, calendar=calendar)
        except SuiteError as e:
            fail(str(e))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo("\n".join(report.lines()))
    raise typer.Exit(1 if report.fails(flips_that_fail) else 0)


def _candidate_directory(candidate: str, current: Path, tmp: Path) -> Path:
    """A directory as is; otherwise a git ref of the repository that holds ``current``."""
    from pdp.engine.sources import GitSource, SourceError

    if Path(candidate).is_dir():
        return Path(candidate)
    try:
        top = subprocess.run(["git", "-C", str(current), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        fail(f"--candidate {candidate!r} is not a directory, and {current} is not in a git "
             "repository to take it as a ref of")
    subdir = current.resolve().relative_to(Path(top).resolve()).as_posix()
    try:
        return GitSource(top, ref=candidate, subdir="" if subdir == "." else subdir,
                         cache_dir=tmp).fetch()
    except SourceError as e:
        fail(f"--candidate {candidate!r}: {e}")


def _logged(settings: Settings) -> list[dict[str, Any]]:
    from pdp.audit.factory import open_configured_log

    log = open_configured_log(settings, spool=False)
    try:
        return list(log.iter_all())
    finally:
        log.close()


