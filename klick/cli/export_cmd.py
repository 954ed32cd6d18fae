"""``klick export usage|answers|merge`` and ``klick report``: the pilot tester's tools.

One command per job. Every failure is one sentence and a non-zero exit (1: the data, 2: the
command line or the settings). Long runs show a progress bar, but only on a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from klick.cli.common import EXIT_INVALID, EXIT_USAGE, config_option, fail, get_config, out_file, plain_errors

FORMATS = ("csv", "json", "sqlite")


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; otherwise a silent counter."""
    if total and sys.stderr.isatty():
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield bar.update
    else:
        yield lambda n: None


def _counted(rows: Iterator[tuple], tick: Callable[[int], None], every: int = 5000) -> Iterator[tuple]:
    n = 0
    for row in rows:
        yield row
        n += 1
        if n == every:
            tick(n)
            n = 0
    if n:
        tick(n)


def _labels(cfg) -> dict[str, str]:
    """Card labels from the card file, for --include-personal; the export goes on without them."""
    try:
        from cards.registry import load_registry

        registry = load_registry(cfg.paths.registry, missing_ok=True)
    except Exception as exc:  # a broken card file must not stop the export of the log
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        click.echo(f"Card labels left out: the card file cannot be read ({first}).", err=True)
        return {}
    return {card.uid: card.label for card in registry.cards}


def _run_export(
    kind: str,
    config_path: str | None,
    db: str | None,
    fmt: str,
    table: str,
    since: str | None,
    until: str | None,
    out: str | None,
    include_personal: bool,
    include_free_text: bool = False,
) -> None:
    from klick import export as ex

    cfg = get_config(config_path)
    try:
        win = ex.window(since, until)
    except ex.ExportError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        card = ex.card_hasher(cfg.pilot.export_key)
    except ex.ExportError as exc:
        fail(str(exc), EXIT_USAGE)
    source = Path(db) if db else Path(cfg.paths.usage_db)
    if fmt == "sqlite" and (out is None or out == "-"):
        fail("An SQLite export needs a file name: add --out FILE.sqlite.", EXIT_USAGE)
    target = None
    if out is not None and out != "-":
        target = out_file(
            out,
            [
                (source, "the database being exported"),
                (cfg.source, "Klick's settings file"),
                (cfg.paths.registry, "the card file"),
                (cfg.paths.questionnaire, "the questionnaire"),
            ],
        )
    try:
        conn = ex.open_usage_db(source)
    except ex.ExportError as exc:
        fail(str(exc), EXIT_INVALID)
    try:
        labels = _labels(cfg) if include_personal else {}
        tables = [table] if fmt != "sqlite" else (["events", "sessions"] if kind == "usage" else ["answers"])
        if fmt == "sqlite":
            parts = []
            total = 0
            devices: set[str] = set()
            for name in tables:
                columns, count, rows = ex.export_rows(
                    conn, name, win, card, include_personal=include_personal, labels=labels, include_free_text=include_free_text
                )
                parts.append((name, columns, rows))
                total += count
                devices.update(ex.devices_in(conn, name))
            meta = ex.export_meta(
                kind, ",".join(sorted(devices)), cfg.pilot.export_key, include_personal, win, include_free_text=include_free_text
            )
            assert target is not None  # refused above, before the database was opened: SQLite needs --out
            with _progress(total, f"Exporting {kind}") as tick:
                n = ex.write_sqlite(parts, target, meta, progress=tick)
        else:
            columns, count, rows = ex.export_rows(
                conn, tables[0], win, card, include_personal=include_personal, labels=labels, include_free_text=include_free_text
            )
            writer = ex.write_csv if fmt == "csv" else ex.write_json
            with _progress(count, f"Exporting {tables[0]}") as tick:
                if target is None:
                    n = writer(columns, _counted(rows, tick), sys.stdout)
                    sys.stdout.flush()
                else:
                    result: list[int] = []

                    def build(tmp: Path) -> None:
                        with open(tmp, "w", encoding="utf-8", newline="") as fh:
                            result.append(writer(columns, _counted(rows, tick), fh))
                            fh.flush()

                    ex.replace_atomically(target, build)
                    n = result[0]
    finally:
        conn.close()
    if target is not None:
        what = "rows" if fmt == "sqlite" else f"{tables[0]} rows"
        privacy = "with raw card IDs and labels" if include_personal else "card IDs as keyed hashes"
        if kind == "answers":
            privacy += ", with written answers" if include_free_text else ", written answers left out"
        click.echo(f"Wrote {n:,} {what} to {target} ({privacy}).", err=True)


def _common(func):
    options = [
        config_option,
        click.option(
            "--db",
            type=click.Path(dir_okay=False),
            default=None,
            help="The usage database to export (default: paths.usage_db from klick.yaml).",
        ),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True),
        click.option("--since", metavar="DATE", help="First day to include, like 2026-03-01 (UTC)."),
        click.option("--until", metavar="DATE", help="Last day to include, like 2026-03-31 (UTC)."),
        click.option(
            "--out",
            type=click.Path(dir_okay=False, allow_dash=True),
            default=None,
            help="File to write; csv and json go to the screen without it.",
        ),
        click.option(
            "--include-personal",
            is_flag=True,
            help="Also export raw card IDs, card labels and free-text details. Only with the pilot's permission.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def export() -> None:
    """Export usage and questionnaire answers for the pilot, pseudonymised by default."""


@export.command("usage")
@_common
@click.option(
    "--table",
    type=click.Choice(["events", "sessions"]),
    default="events",
    show_default=True,
    help="For csv and json: which table. An sqlite export holds both.",
)
@plain_errors
def export_usage(config_path, db, fmt, since, until, out, include_personal, table) -> None:
    """Export the usage log: events (or sessions), card IDs replaced by keyed hashes.

    \b
    Examples:
      klick export usage --format csv --since 2026-03-01 --until 2026-03-31 --out march.csv
      klick export usage --format sqlite --out hbg-07-usage.sqlite
    """
    _run_export("usage", config_path, db, fmt, table, since, until, out, include_personal)


@export.command("answers")
@_common
@click.option(
    "--include-free-text",
    is_flag=True,
    help="Also export written answers (the text column). Residents write names and phone numbers there: only with the pilot's permission.",
)
@plain_errors
def export_answers(config_path, db, fmt, since, until, out, include_personal, include_free_text) -> None:
    """Export the questionnaire: every question asked, its state and the answer.

    Written answers are left out unless --include-free-text is given.

    \b
    Example:
      klick export answers --format sqlite --out hbg-07-answers.sqlite
    """
    _run_export("answers", config_path, db, fmt, "answers", since, until, out, include_personal, include_free_text)


@export.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The merged pilot file to write.")
@plain_errors
def export_merge(files, out) -> None:
    """Merge SQLite exports from many devices into one pilot file.

    \b
    Example:
      klick export merge hbg-*.sqlite --out PILOT.sqlite
    """
    from klick import export as ex

    paths = [Path(f) for f in files]
    target = out_file(out, [(p, "one of the files to merge") for p in paths])
    show = sys.stderr.isatty() and len(paths) > 1
    try:
        if show:
            with click.progressbar(length=len(paths), label="Merging", file=sys.stderr) as bar:
                counts = ex.merge(paths, target, progress=lambda p: bar.update(1))
        else:
            counts = ex.merge(paths, target)
    except ex.ExportError as exc:
        fail(str(exc), EXIT_INVALID)
    click.echo(
        f"Merged {len(paths)} files into {out}: {counts['events']:,} events, "
        f"{counts['sessions']:,} sessions, {counts['answers']:,} questions.",
        err=True,
    )


@click.command()
@click.argument("pilot", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML page to write.")
@plain_errors
def report(pilot, out) -> None:
    """Write a self-contained HTML report with plots and tables from an export or merged file.

    \b
    Example:
      klick report PILOT.sqlite --out report.html
    """
    from klick.export import ExportError
    from klick.report import write_report

    target = out_file(out, [(Path(pilot), "the file the report is made from")])
    try:
        summary = write_report(Path(pilot), target)
    except ExportError as exc:
        fail(str(exc), EXIT_INVALID)
    click.echo(f"Wrote {out}: {summary}.", err=True)
