"""``klick fleet``: the tablet's reporting daemon, and the office's collect, status and enrol.

``klick fleet`` alone is the daemon (systemd runs it on the tablet); the subcommands run at the
office, with a ``fleet:`` section in their own klick.yaml naming the collector's (or office's)
broker user, or the same settings given as options.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from klick.cli.common import EXIT_INVALID, EXIT_USAGE, config_option, fail, get_config, out_file, plain_errors, print_problems


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("paho").setLevel(logging.WARNING)


@click.group(invoke_without_command=True)
@config_option
@click.option("--keepalive", type=click.IntRange(1, 3600), default=30, hidden=True, help="MQTT keepalive (s), for tests.")
@click.pass_context
@plain_errors
def fleet(ctx: click.Context, config_path: str | None, keepalive: int) -> None:
    """Report this tablet to the municipality's MQTT broker (the daemon; off without a fleet: section).

    \b
    At the office:
      klick fleet enrol hbg-07 --host mqtt.kommun.se   the tablet's settings and the broker's password line
      klick fleet collect --out PILOT.sqlite           every tablet's rows into one pilot file
      klick fleet status                               one line per tablet, problems first
      klick fleet keygen                               the key pair that signs pushes
      klick fleet push cards anna.klick --device hbg-07 --wait
                                                       a card set to a tablet (or --group G)
    """
    if ctx.invoked_subcommand is not None:
        return
    from fleet.device import FleetSetupError, run

    _logging()
    try:
        sys.exit(run(get_config(config_path), keepalive=keepalive))
    except FleetSetupError as exc:
        fail(str(exc), EXIT_USAGE)


def _office_options(func):
    options = [
        config_option,
        click.option("--host", default=None, help="The broker (default: fleet.host from klick.yaml)."),
        click.option("--port", type=click.IntRange(1, 65535), default=None, help="Its TLS port (default: fleet.port)."),
        click.option("--ca-file", type=click.Path(dir_okay=False), default=None, help="The broker's CA certificate."),
        click.option("--username", default=None, help="The office's broker user (default: fleet.username)."),
        click.option("--password-file", type=click.Path(dir_okay=False), default=None, help="A file with its password."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _office_access(config_path, host, port, ca_file, username, password_file):
    from dataclasses import replace

    from fleet.mqtt import FleetSetupError, access_from_config

    settings = get_config(config_path).fleet
    given = {
        "host": host,
        "port": port,
        "ca_file": Path(ca_file) if ca_file else None,
        "username": username,
        "password_file": Path(password_file) if password_file else None,
    }
    settings = replace(settings, **{k: v for k, v in given.items() if v is not None})
    if not settings.host:
        fail("Name the broker: --host, or fleet.host in klick.yaml.", EXIT_USAGE)
    if not settings.username:
        fail("Name the office's broker user: --username, or fleet.username in klick.yaml.", EXIT_USAGE)
    try:
        return access_from_config(settings, settings.username)
    except FleetSetupError as exc:
        fail(str(exc), EXIT_USAGE)


@fleet.command()
@_office_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The pilot file to write (made if new).")
@click.option(
    "--client-id",
    default="klick-collector",
    show_default=True,
    help="The session's name, fixed so the broker keeps messages while away (the broker sees it with a hash of the password).",
)
@click.option("--share", default=None, metavar="GROUP", help="Share the load with other collectors ($share/GROUP/...).")
@click.option("--for", "for_s", type=float, default=None, hidden=True, help="Stop after this many seconds (tests).")
@plain_errors
def collect(config_path, host, port, ca_file, username, password_file, out, client_id, share, for_s) -> None:
    """Collect every tablet's rows into a pilot file (the schema `klick export merge` writes).

    \b
    Example:
      klick fleet collect --out PILOT.sqlite
      klick report PILOT.sqlite --out report.html      (at any time, also while collecting)
    """
    from fleet.collector import Collector
    from klick.export import ExportError, export_key_problem, key_check

    _logging()
    access = _office_access(config_path, host, port, ca_file, username, password_file)
    cfg = get_config(config_path)
    target = out_file(
        out,
        [
            (cfg.paths.usage_db, "this computer's usage database"),
            (cfg.source, "Klick's settings file"),
            (cfg.paths.registry, "the card file"),
            (cfg.paths.questionnaire, "the questionnaire"),
            (access.ca_file, "the broker's CA certificate"),
        ],
    )
    export_key = cfg.pilot.export_key
    problem = export_key_problem(export_key) if export_key else None
    if problem:
        fail(problem, EXIT_USAGE)
    try:
        collector = Collector(
            access, target, client_id=client_id, share=share, key_check=key_check(export_key) if export_key else ""
        )
    except ExportError as exc:
        fail(str(exc), EXIT_INVALID)
    end = None if for_s is None else time.monotonic() + for_s
    counts, rejects = collector.run(until=(lambda: time.monotonic() > end) if end else None)
    refused = ", ".join(f"{n} {reason}" for reason, n in rejects.items()) or "none"
    click.echo(
        f"{out}: {counts['events']:,} events, {counts['sessions']:,} sessions, {counts['answers']:,} questions; "
        f"messages refused: {refused}.",
        err=True,
    )


@fleet.command()
@_office_options
@click.option("--json", "as_json", is_flag=True, help="One JSON list, for scripts.")
@plain_errors
def status(config_path, host, port, ca_file, username, password_file, as_json) -> None:
    """One line per tablet: online or offline since when, last card, reader, backlog, card set; problems first."""
    import secrets

    from fleet.status import format_lines, read_retained, summarise

    access = _office_access(config_path, host, port, ca_file, username, password_file)
    try:
        retained = read_retained(access, client_id=f"klick-status-{secrets.token_hex(4)}")
    except (ConnectionError, TimeoutError, OSError) as exc:
        fail(f"Could not read the fleet's state from {access.host}:{access.port}: {exc}.", EXIT_INVALID)
    statuses = summarise(retained, time.time())
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in statuses], ensure_ascii=False, indent=1))
    else:
        for line in format_lines(statuses):
            click.echo(line)


@fleet.command()
@click.argument("device")
@click.option("--host", required=True, help="The broker's name, as the tablet reaches it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8883, show_default=True)
@plain_errors
def enrol(device, host, port) -> None:
    """Print a tablet's fleet: settings, its broker password, and the broker's password-file line.

    \b
    Example:
      klick fleet enrol hbg-07 --host mqtt.kommun.se
    """
    from fleet.credentials import enrol_text, new_password

    try:
        click.echo(enrol_text(device, new_password(), host=host, port=port), nl=False)
    except ValueError as exc:
        fail(f"{exc}.", EXIT_USAGE)


@fleet.command()
@config_option
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Where the private key goes (default: fleet.office_key_file)."
)
@click.option("--public", "show_public", is_flag=True, help="Print the public key of the existing office key again.")
@plain_errors
def keygen(config_path, out, show_public) -> None:
    """Make the municipality's signing key pair: the private key stays at the office, the public
    key goes into every tablet's klick.yaml (fleet.signing_key).

    \b
    Example:
      klick fleet keygen                 writes fleet.office_key_file (mode 0600), prints the tablets' line
      klick fleet keygen --public        prints the tablets' line again
    """
    from fleet.signing import SigningKeyError, load_private_key, new_key_pair, public_text, write_private_key

    path = Path(out) if out else get_config(config_path).fleet.office_key_file
    try:
        if show_public:
            key = load_private_key(path)
        else:
            key = new_key_pair()
            write_private_key(key, path)
    except SigningKeyError as exc:
        fail(str(exc), EXIT_USAGE)
    if not show_public:
        click.echo(f"# The office's private signing key is in {path} (mode 0600). Keep it on this computer only,")
        click.echo("# with a copy in the municipality's safe: without it no push can be signed, and anyone who")
        click.echo("# has it can change every tablet's cards.")
    click.echo("# On every tablet, in /etc/klick/klick.yaml, then: sudo systemctl restart klick-fleet")
    click.echo("fleet:")
    click.echo(f'  signing_key: "{public_text(key)}"')


@fleet.group()
def push() -> None:
    """Send a signed card set or questionnaire to tablets through the broker.

    \b
    A tablet checks what it gets exactly as `klick cards unpack` checks a bundle (and the
    questionnaire as the launcher does), swaps it in whole, and says so: see `klick fleet status`.
    A tablet that is off gets the push when it comes back (the broker keeps it, retained).
    """


def _push_options(func):
    options = [
        click.option("--device", "devices", multiple=True, metavar="NAME", help="A tablet (may be given more than once)."),
        click.option(
            "--group", "groups", multiple=True, metavar="NAME", help="A group from the groups file (fleet.groups_file)."
        ),
        click.option("--groups-file", type=click.Path(dir_okay=False), default=None, help="The groups file to read instead."),
        click.option(
            "--key",
            "key_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="The office key (default: fleet.office_key_file).",
        ),
        click.option("--wait", is_flag=True, help="Wait for the tablets that are online to apply it; one line per tablet."),
        click.option("--timeout", type=click.FloatRange(1, 3600), default=60.0, show_default=True, help="Seconds --wait waits."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _push(
    kind, path, config_path, host, port, ca_file, username, password_file, devices, groups, groups_file, key_file, wait, timeout
):
    from fleet import push as pushing
    from fleet.signing import SigningKeyError, load_private_key

    cfg = get_config(config_path)
    try:
        targets = pushing.targets(devices, groups, Path(groups_file) if groups_file else cfg.fleet.groups_file)
    except pushing.PushError as exc:
        print_problems(exc.problems)
        fail(str(exc), EXIT_USAGE)
    try:
        body, name, notes = pushing.card_set(Path(path)) if kind == "cards" else pushing.questionnaire(Path(path))
    except pushing.PushError as exc:
        print_problems(exc.problems)
        fail(str(exc), EXIT_INVALID)
    for note in notes:
        click.echo(note, err=True)
    try:
        key = load_private_key(Path(key_file) if key_file else cfg.fleet.office_key_file)
    except SigningKeyError as exc:
        fail(str(exc), EXIT_USAGE)
    access = _office_access(config_path, host, port, ca_file, username, password_file)
    try:
        results = pushing.push(access, key, kind, body, name, targets, wait=wait, wait_s=timeout)
    except pushing.PushError as exc:
        fail(str(exc), EXIT_INVALID)
    except OSError as exc:
        fail(f"The broker at {access.host}:{access.port} cannot be reached ({exc.strerror or exc}).", EXIT_INVALID)
    for line in pushing.format_results(kind, results):
        click.echo(line)
    if any(r.outcome in ("refused", "not_sent", "no_answer") for r in results):
        sys.exit(EXIT_INVALID)


@push.command("cards")
@_office_options
@_push_options
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True))
@plain_errors
def push_cards(
    config_path, host, port, ca_file, username, password_file, devices, groups, groups_file, key_file, wait, timeout, bundle
) -> None:
    """Send a card set (a .klick bundle, or a cards.yaml with its pictures) to tablets.

    \b
    Examples:
      klick fleet push cards anna.klick --device hbg-07 --wait
      klick fleet push cards hemtjanst.klick --group norr
    """
    _push(
        "cards",
        bundle,
        config_path,
        host,
        port,
        ca_file,
        username,
        password_file,
        devices,
        groups,
        groups_file,
        key_file,
        wait,
        timeout,
    )


@push.command("questionnaire")
@_office_options
@_push_options
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@plain_errors
def push_questionnaire(
    config_path, host, port, ca_file, username, password_file, devices, groups, groups_file, key_file, wait, timeout, file
) -> None:
    """Send a questionnaire.yaml to tablets (a running launcher takes it within a few seconds).

    \b
    Example:
      klick fleet push questionnaire questionnaire.yaml --group pilot --wait
    """
    _push(
        "questionnaire",
        file,
        config_path,
        host,
        port,
        ca_file,
        username,
        password_file,
        devices,
        groups,
        groups_file,
        key_file,
        wait,
        timeout,
    )
