"""``pdp audit ...``: the auditor's offline tools, reading the decision log directly.

They open the store named by configuration (``--config``/``PDP_*``/``--state-dir``,
the SQLite file by default) and the bundle archive beside it, and run the same
code as the HTTP auditor endpoints (:mod:`pdp.audit.auditing.auditor`, ``replay``,
``inventory``). Unlike the API they carry no credential and record nothing:
whoever can run them can read the log's files anyway, so access to these
commands is access to the filesystem, and is controlled there.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from pdp.cli.common import MIN_PREFIX, ConfigOpt, StateDirOpt, fail, settings_from

app = typer.Typer(no_args_is_help=True, help="Read, replay, verify and export the decision log.")

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]


@contextmanager
def _opened(config: Path | None, state_dir: Path | None) -> Iterator[tuple[Any, Any]]:
    """(settings, store) for the configured decision log; closed afterwards."""
    from pdp.audit.errors import AuditUnavailable
    from pdp.audit.factory import open_configured_log

    settings = settings_from(config, state_dir=state_dir)
    if settings.audit.backend == "sqlite" and not settings.sqlite_path.exists():
        fail(f"no decision log at {settings.sqlite_path} (give --state-dir or --config)")
    try:
        # Reading tools never ship a spool: that is the serving PDP's job.
        log = open_configured_log(settings, spool=False)
    except (AuditUnavailable, ValueError) as e:
        fail(f"cannot open the decision log: {e}")
    try:
        yield settings, log
    finally:
        log.close()


def find_record(log: Any, given: str) -> dict[str, Any]:
    """The record whose decision id is ``given`` or, failing that, the one record whose id
    starts with it (as git takes a commit's prefix); exits naming the candidates when
    several match, and when none does."""
    from pdp.audit.query import DecisionFilter  # deferred: module docstring

    text = given.strip()
    record: dict[str, Any] | None = log.get(text) if text else None
    if record is not None:
        return record
    if len(text) < MIN_PREFIX:
        fail(f"no decision with id {given} (a prefix needs at least {MIN_PREFIX} characters)")
    page = log.query(DecisionFilter(decision_id_prefix=text.lower()), 10, None)
    if not page.records and text != text.lower():
        page = log.query(DecisionFilter(decision_id_prefix=text), 10, None)
    if not page.records:
        fail(f"no decision with id {given}, nor one whose id starts with it")
    if len(page.records) > 1:
        ids = "\n  ".join(str(r.get("decision_id")) for r in page.records)
        more = " (and more)" if page.next_cursor else ""
        fail(f"{given!r} is ambiguous; it starts{more}:\n  {ids}")
    found: dict[str, Any] = page.records[0]
    return found


def _archive(settings: Any) -> Any:
    from pdp.audit.auditing.archive import BundleArchive, archive_dir

    return BundleArchive(archive_dir(settings.state_dir))


@app.command()
def tail(
    n: Annotated[int, typer.Option("-n", "--lines", help="How many decisions.")] = 10,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing decisions as they are logged, until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="With -f: seconds between looks at the log.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Print the latest decisions, oldest first (`-f`: and then every new one)."""
    with _opened(config, state_dir) as (_, log):
        records = log.tail(n)
        if as_json:
            for record in records:
                typer.echo(json.dumps(record, sort_keys=True))
        elif follow:
            for record in records:
                typer.echo(_line(record))
        else:
            _table(records)
        if follow:
            last = max((int(r.get("seq") or 0) for r in records), default=_last_seq(log))
            try:
                _follow(log, last, interval, as_json)
            except KeyboardInterrupt:
                pass


def _last_seq(log: Any) -> int:
    newest = log.tail(1)
    return int(newest[0].get("seq") or 0) if newest else 0


def _follow(log: Any, last: int, interval: float, as_json: bool) -> None:
    """Print records with a seq above ``last`` as they arrive (one line each), forever.

    The log is append-only with gap-free seqs, so "the newest records above ``last``"
    is everything new; a look that finds a full page looks again with a bigger one.
    """
    page = 100
    while True:
        time.sleep(interval)
        newest = log.tail(page)
        fresh = [r for r in newest if int(r.get("seq") or 0) > last]
        if len(fresh) == len(newest) == page:  # more arrived than a page: look further back
            page *= 2
            continue
        for record in fresh:
            typer.echo(json.dumps(record, sort_keys=True) if as_json else _line(record))
            last = int(record.get("seq") or last)
        sys.stdout.flush()


def _line(r: dict[str, Any]) -> str:
    """One record on one line, its decision id whole (for `tail -f`)."""
    return (f"{str(r.get('timestamp', ''))[:19].replace('T', ' ')}  "
            f"{r.get('decision') or r.get('kind')}  "
            f"{r.get('principal') or '-'}  {r.get('action') or r.get('event') or '-'}  "
            f"{r.get('resource') or '-'}  {r.get('decision_id')}  {r.get('explanation') or ''}")


@app.command()
def query(
    principal: Annotated[str | None, typer.Option(help="Exact principal id.")] = None,
    principal_prefix: Annotated[str | None, typer.Option(
        help="Principal prefix, e.g. spiffe://example.org/.")] = None,
    action: Annotated[str | None, typer.Option(help='Action: read or App::Action::"read".')] = None,
    resource: Annotated[str | None, typer.Option(help="Resource: App::Dataset::ledger.")] = None,
    decision: Annotated[str | None, typer.Option(help="allow or deny.")] = None,
    policy: Annotated[str | None, typer.Option(help="A determining policy's @id.")] = None,
    reason_code: Annotated[str | None, typer.Option(help="e.g. policy.forbid.")] = None,
    pep: Annotated[str | None, typer.Option(help="The PEP that asked.")] = None,
    kind: Annotated[str | None, typer.Option(help="decision or admin.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601, inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601, exclusive.")] = None,
    limit: Annotated[int, typer.Option(help="Records per page (1..1000).")] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header.")] = False,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Find decisions, newest first; the next page's cursor goes to stderr."""
    from pdp.audit.auditing.auditor import export_lines, make_filter

    values = dict(principal=principal, principal_prefix=principal_prefix, action=action,
                  resource=resource, decision=decision, policy=policy, reason_code=reason_code,
                  pep=pep, kind=kind, since=since, until=until)
    with _opened(config, state_dir) as (settings, log):
        try:
            bundle = (_current_bundle(settings, quiet=True)
                      if action and "::" not in action else None)
            flt = make_filter(values, bundle)
            page = log.query(flt, limit, cursor)
        except ValueError as e:
            fail(str(e))
    if as_csv:
        for chunk in export_lines(iter(page.records), "csv"):
            sys.stdout.write(chunk)
    elif as_json:
        for record in page.records:
            typer.echo(json.dumps(record, sort_keys=True, ensure_ascii=False))
    else:
        _table(page.records)
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}", err=True)


@app.command()
def show(
    decision_id: Annotated[str, typer.Argument(help="The decision_id, or any unique prefix of it (4+ characters).")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """One decision: its explanation and the text of the policies that decided it, as they were."""
    from pdp.audit.auditing.auditor import decision_view

    with _opened(config, state_dir) as (settings, log):
        record = find_record(log, decision_id)
        view = decision_view(record, archive=_archive(settings))
    if as_json:
        typer.echo(json.dumps(view, indent=2, sort_keys=True, ensure_ascii=False))
        return
    _print_view(view)


@app.command()
def replay(
    decision_id: Annotated[str, typer.Argument(help="The decision_id, or any unique prefix of it (4+ characters).")],
    as_json: JsonOpt = False,
    policies: Annotated[Path | None, typer.Option(
        "--policies", help="The current bundle to compare with.",
        show_default="the configured one")] = None,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Re-evaluate a decision under its recorded bundle and the current one.

    Exit 0 when it reproduced, 1 when it did not, 3 when it could not be replayed."""
    from pdp.authoring.replay import replay_record

    with _opened(config, state_dir) as (settings, log):
        record = find_record(log, decision_id)
        if policies is not None:
            settings = settings.model_copy(update={"policies": policies})
        report = replay_record(record, archive=_archive(settings),
                               current=_current_bundle(settings))
    out = report.as_dict()
    if as_json:
        typer.echo(json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        _print_replay(out)
    raise typer.Exit(0 if report.reproduced else 3 if report.reproduced is None else 1)


@app.command()
def verify(
    as_json: JsonOpt = False,
    export_file: Annotated[Path | None, typer.Option(
        "--export", help="Check this JSON Lines export (`pdp audit export`) instead of the log, "
                         "from its first record on.")] = None,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Check the whole hash chain; name the first broken link. Exit 0 intact, 1 broken."""
    from pdp.audit.auditing.auditor import verify_store

    if export_file is not None:
        report = _verify_export_file(export_file)
    else:
        with _opened(config, state_dir) as (settings, log):
            report = verify_store(log, settings=settings)
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    elif report.get("ok"):
        rollup = report.get("rollups") or {}
        hours = (f"; hourly rollups match the log ({rollup.get('hours')} hour(s))"
                 if rollup.get("compared") else "")
        typer.echo(f"ok: {report.get('checked')} records, chain intact; head seq "
                   f"{report.get('last_seq')} hash {report.get('head_hash')}{hours}")
    elif report.get("problem") == "rollup mismatch":
        typer.echo(f"BROKEN: chain intact ({report.get('checked')} records), but "
                   f"{report.get('detail')}")
    else:
        typer.echo(f"BROKEN: {report.get('detail') or report.get('problem')}; first broken "
                   f"record seq {report.get('first_broken_seq')} "
                   f"(decision_id {report.get('first_broken_decision_id')}); "
                   f"{report.get('checked')} records checked before it")
    raise typer.Exit(0 if report.get("ok") else 1)


@app.command("rebuild-rollups")
def rebuild_rollups(
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Recount the overview's hourly rollups from the decision log (the repair when
    `pdp audit verify` reports a rollup mismatch). The chain is verified first: a
    rollup is never rebuilt from a log that does not verify. Exit 0 rebuilt, 1 refused."""
    from pdp.audit import rollups
    from pdp.audit.auditing.auditor import verify_store

    with _opened(config, state_dir) as (settings, log):
        report = verify_store(log, settings=settings)
        if not report.get("ok") and report.get("problem") != "rollup mismatch":
            typer.echo(f"refused: the chain does not verify ({report.get('problem')}: "
                       f"{report.get('detail')}); the rollups were not rebuilt", err=True)
            raise typer.Exit(1)
        state = rollups.rebuild_store(log)
        after = rollups.check_store(log)
    if state is None:
        typer.echo("this log keeps no rollups (not SQL): nothing to rebuild")
        raise typer.Exit(0)
    if after is None or not after.ok:
        typer.echo(f"rebuilt, but the rollups still differ: {after.detail() if after else ''}",
                   err=True)
        raise typer.Exit(1)
    typer.echo(f"rebuilt: {after.hours} hour(s) from seq {state.from_seq} through "
               f"{state.through_seq} ({state.counted} decisions); they match the log")


def _verify_export_file(path: Path) -> dict[str, Any]:
    from dataclasses import asdict

    from pdp.audit.chain.verify import verify_export

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {e}")
    lines = text.split("\n")  # not splitlines(): JSON strings may hold U+2028 raw
    if lines and lines[-1] == "":
        lines.pop()
    return asdict(verify_export(lines))


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    since: Annotated[str | None, typer.Option(help="ISO 8601, inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601, exclusive.")] = None,
    kind: Annotated[str | None, typer.Option(help="decision or admin.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File.", show_default="stdout")] = None,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Export records in log order (oldest first) as JSON Lines or CSV."""
    from pdp.audit.auditing.auditor import export_lines, export_records
    from pdp.audit.query import DecisionFilter

    if fmt not in ("jsonl", "csv"):
        fail("--format must be jsonl or csv")
    try:
        flt = DecisionFilter(since=since, until=until, kind=kind)
    except ValueError as e:
        fail(str(e))
    with _opened(config, state_dir) as (_, log):
        chunks = export_lines(export_records(log, flt), fmt)
        if output is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
            sys.stdout.flush()
        else:
            with output.open("w", encoding="utf-8", newline="") as f:
                for chunk in chunks:
                    f.write(chunk)
            typer.echo(f"wrote {output}", err=True)


@app.command()
def identities(
    stale_days: Annotated[int, typer.Option(help="Not seen for N days: stale.")] = 90,
    long_lived_s: Annotated[int, typer.Option(help="Credentials living longer: long-lived.")] = 3600,
    flagged: Annotated[bool, typer.Option("--flagged", help="Only flagged identities.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Every principal seen: first/last seen, issuers, kinds, longest lifetime, counts, flags."""
    from datetime import UTC, datetime

    from pdp.audit.auditing.inventory import (
        RefusalTally,
        identity_inventory,
        inventory_report,
        max_lifetimes_from_settings,
    )

    now = datetime.now(UTC)
    with _opened(config, state_dir) as (settings, log):
        refusals = RefusalTally(tuple(settings.context.behaviour.source_keys))
        entries = identity_inventory(log.iter_all(), now=now, stale_days=stale_days,
                                     long_lived_s=long_lived_s,
                                     max_lifetimes=max_lifetimes_from_settings(settings),
                                     refusals=refusals)
    report = inventory_report(entries, now=now, stale_days=stale_days,
                              long_lived_s=long_lived_s, flagged_only=flagged,
                              refusals=refusals)
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("principal", "first seen", "last seen", "issuers", "kinds", "longest s",
                  "requests", "denies", "flags",
                  title=f"{report['total']} identities, {report['stale']} stale "
                        f"(> {stale_days} d), {report['long_lived']} long-lived")
    for e in report["identities"]:
        table.add_row(e["principal"], e["first_seen"][:19], e["last_seen"][:19],
                      " ".join(e["issuers"]), " ".join(e["credential_kinds"]),
                      str(e["longest_lifetime_s"] if e["longest_lifetime_s"] is not None else "-"),
                      str(e["requests"]), str(e["denies"]),
                      ", ".join(e["flags"]) or "-")
    Console(width=200).print(table)


def _current_bundle(settings: Any, quiet: bool = False) -> Any:
    from pdp.engine.bundle import load_bundle
    from pdp.engine.problems import BundleInvalid

    try:
        return load_bundle(settings.policies)
    except BundleInvalid as e:
        if not quiet:
            typer.echo(f"pdp: the current bundle does not load, comparing with none:\n{e}",
                       err=True)
        return None


NARROW = 140
"""Below this many columns the table leaves out the explanation (`pdp audit show` has it)."""


def _table(records: list[dict[str, Any]]) -> None:
    """A table that never cuts a decision id (it is copied into `pdp audit show`): the id
    and time columns do not wrap or shrink, the others fold. Below ``NARROW`` columns,
    where seven columns leave each a word wide, one line per record instead (as `tail -f`)."""
    from rich.console import Console  # deferred: module docstring
    from rich.table import Table

    console = Console(soft_wrap=False)
    if console.width < NARROW:
        for record in records:
            typer.echo(_line(record))
        return
    id_width = max((len(str(r.get("decision_id"))) for r in records), default=11)
    table = Table(box=None, pad_edge=False)
    table.add_column("time", no_wrap=True, min_width=19)
    table.add_column("decision", no_wrap=True)
    for name in ("principal", "action", "resource"):
        table.add_column(name, overflow="fold")
    table.add_column("decision_id", no_wrap=True, min_width=id_width, overflow="ignore")
    table.add_column("why", overflow="fold", ratio=1)
    for r in records:
        table.add_row(str(r.get("timestamp", ""))[:19].replace("T", " "),
                      str(r.get("decision") or r.get("kind")), str(r.get("principal") or "-"),
                      str(r.get("action") or r.get("event") or "-"),
                      str(r.get("resource") or "-"), str(r.get("decision_id")),
                      str(r.get("explanation") or ""))
    console.print(table)


def _print_view(view: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.syntax import Syntax

    console = Console(width=120)
    version = view.get("policy_version") or {}
    console.print(f"[bold]{view.get('decision') or view.get('kind')}[/bold]  "
                  f"{view.get('decision_id')}  at {view.get('timestamp')}  (seq {view.get('seq')})")
    console.print(f"principal: {view.get('principal') or '-'}\naction:    "
                  f"{view.get('action') or view.get('event') or '-'}\nresource:  "
                  f"{view.get('resource') or '-'}\npep:       {view.get('pep') or '-'}   "
                  f"request_id: {view.get('request_id') or '-'}")
    console.print(f"policy version: {version.get('label', '-')}  "
                  f"reason codes: {', '.join(view.get('reason_codes') or []) or '-'}")
    if view.get("redacted"):
        console.print(f"redacted: {', '.join(view['redacted'])}")
    console.print(Panel(str(view.get("explanation") or ""), title="explanation"))
    for policy in view.get("determining_policies") or []:
        title = f"{policy.get('id')} ({policy.get('effect')}, {policy.get('file') or '?'})"
        text = policy.get("text")
        body: Any = (Syntax(text, "rust", word_wrap=True) if text
                     else f"(text not archived) {policy.get('reason') or ''}")
        console.print(Panel(body, title=title))
    if view.get("bundle_archived") is False:
        console.print("note: the bundle version that decided is not in the archive")


def _print_replay(out: dict[str, Any]) -> None:
    def line(name: str, s: dict[str, Any] | None) -> str:
        if s is None:
            return f"{name:>9}: -"
        return (f"{name:>9}: {s['decision']}  policies {s['policies'] or '[]'}  "
                f"{' '.join(s['reason_codes'])}")

    verdict = {True: "REPRODUCED", False: "NOT REPRODUCED", None: "NOT REPLAYED"}
    typer.echo(f"{out['decision_id']}: {verdict[out['reproduced']]}"
               + ("" if out["would_change"] is None else
                  "; the current bundle would decide differently" if out["would_change"]
                  else "; the current bundle decides the same"))
    typer.echo(line("recorded", out["recorded"]))
    typer.echo(line("replayed", out["replayed"]))
    typer.echo(line("current", out["current"]))
    for diff in out["differences"]:
        typer.echo(f"  differs: {diff}")
    for change in out["changes"]:
        typer.echo(f"  would change: {change}")
    for note in out["notes"]:
        typer.echo(f"  note: {note}")
