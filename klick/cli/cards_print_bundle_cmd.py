"""`klick cards print | pack | unpack`: card faces on paper, and card sets on a USB stick.

These are plain click commands; ``klick.cli.cards_cmd`` adds them to the ``cards`` group. The
work itself lives in ``cards.printing`` and ``cards.bundle``; this module only turns options into
calls and failures into one plain sentence and an exit code.
"""

from __future__ import annotations

from pathlib import Path

import click

from klick.atomic import backup_path
from klick.cli.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    config_option,
    fail,
    get_config,
    out_file,
    plain_errors,
    print_problems,
    registry_option,
)
from klick.cli.common import (
    registry_path_for as _registry_path,
)

__all__ = ["print_cmd", "pack", "unpack"]


def _locale(config_path: str | None, locale: str | None) -> str:
    """The language of the faces: --locale, else the device's setting, else Swedish."""
    if locale:
        return locale
    from klick.config import ConfigError, load_config

    try:
        return load_config(config_path).locale
    except ConfigError:
        return "sv"


def _load_registry(path: Path):
    from cards.registry import RegistryError, load_registry

    if not path.exists():
        fail(f"There is no card file at {path}. Add a card with `klick cards add`, or give one with --registry.", EXIT_INVALID)
    try:
        registry = load_registry(path)
    except RegistryError as exc:
        print_problems(exc.problems)
        fail(f"The card file {path} has problems; fix the lines above and try again.", EXIT_INVALID)
    for warning in registry.warnings:
        click.echo(str(warning), err=True)
    return registry


@click.command("print")
@click.argument("uids", nargs=-1, metavar="[UID]...")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="The PDF file to write, e.g. cards.pdf.")
@click.option("--backs", is_flag=True, help="Add a page of card backs after each page of faces (for duplex printing).")
@click.option("--locale", type=click.Choice(["sv", "en"]), default=None, help="Language of the words on the cards.")
@config_option
@registry_option
@plain_errors
def print_cmd(
    uids: tuple[str, ...], out: str, backs: bool, locale: str | None, config_path: str | None, registry_path: str | None
) -> None:
    """Write card faces to print (ID-1 size, eight on an A4 page, with crop marks).

    Without UIDs every card is printed. Example:

    \b
      klick cards print --out cards.pdf
      klick cards print 04A2B3C4D5E680 --backs --out anna.pdf
    """
    from cards.printing import PrintError, render_cards
    from klick.uid import UidError, normalise_uid

    path = _registry_path(config_path, registry_path)
    target = out_file(out, [(path, "the card file"), (backup_path(path), "the card file's backup")])
    registry = _load_registry(path)
    chosen = []
    for text in uids:
        try:
            uid = normalise_uid(text)
        except UidError as exc:
            fail(f'"{text}" is not a card ID: {exc}. `klick cards list` shows the cards.', EXIT_USAGE)
        card = registry.get(uid)
        if card is None:
            fail(
                f"There is no card with ID {uid} in {path}; nothing was printed. `klick cards list` shows the cards.",
                EXIT_INVALID,
            )
        chosen.append(card)
    cards = chosen or list(registry.cards)
    if not cards:
        fail(f"There are no cards in {path} to print. Add one with `klick cards add`.", EXIT_INVALID)
    try:
        result = render_cards(cards, target, locale=_locale(config_path, locale), backs=backs)
    except PrintError as exc:
        fail(str(exc), EXIT_INVALID)
    what = f"{result.faces} card face{'s' if result.faces != 1 else ''}"
    click.echo(
        f"Wrote {what} on {result.pages} page{'s' if result.pages != 1 else ''} to {result.path}. "
        'Print at actual size (100 %, no "fit to page") and cut along the marks.'
    )


@click.command()
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="The bundle to write, e.g. mamma.klick.")
@config_option
@registry_option
@plain_errors
def pack(out: str, config_path: str | None, registry_path: str | None) -> None:
    """Put the card set (cards.yaml, its pictures and photo albums) into one bundle file.

    \b
      klick cards pack --out /media/usb/mamma.klick
    """
    from cards.bundle import BundleError, pack_bundle

    path = _registry_path(config_path, registry_path)
    target = out_file(out, [(path, "the card file"), (backup_path(path), "the card file's backup")])
    registry = _load_registry(path)
    try:
        result = pack_bundle(registry, path, target)
    except BundleError as exc:
        fail(str(exc), EXIT_INVALID)
    for note in result.notes:
        click.echo(note, err=True)
    click.echo(
        f"Packed {result.cards} card{'s' if result.cards != 1 else ''} and {result.files} picture"
        f"{'s' if result.files != 1 else ''} ({_size(result.bytes)}) into {result.path}."
    )


@click.command()
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option(
    "--allow-commands",
    is_flag=True,
    help="Accept command cards (they start programs on the tablet): only from a sender you trust.",
)
@click.option(
    "--allow-server",
    "allow_servers",
    multiple=True,
    metavar="HOST",
    help="Accept video calls to this server too, besides calls.allowed_servers (repeatable).",
)
@config_option
@registry_option
@plain_errors
def unpack(
    bundle: str, allow_commands: bool, allow_servers: tuple[str, ...], config_path: str | None, registry_path: str | None
) -> None:
    """Replace the card set with the one in a bundle; the old card file is kept as .bak.

    Everything in the bundle is checked first; if anything is wrong, nothing is changed. A bundle
    with command cards, or with video calls to a server not in calls.allowed_servers, is refused
    unless you accept them with --allow-commands or --allow-server HOST.

    \b
      klick cards unpack /media/usb/mamma.klick
      klick cards unpack mamma.klick --allow-server meet.example.se
    """
    from cards.bundle import BundleError, NotAllowedHere, unpack_bundle
    from cards.policy import policy_problems
    from cards.registry import RegistryError, load_registry
    from klick.calls import CallServerError, call_origin

    cfg = get_config(config_path)
    path = Path(registry_path) if registry_path else cfg.paths.registry
    extra = []
    for host in allow_servers:
        try:
            extra.append(call_origin(host))
        except CallServerError as exc:
            fail(f"--allow-server {host}: {exc}.", EXIT_USAGE)
    if not Path(bundle).is_file():
        fail(f"There is no bundle at {bundle}.", EXIT_INVALID)
    try:
        result = unpack_bundle(bundle, path, allowed_servers=(*cfg.calls.allowed_servers, *extra), allow_commands=allow_commands)
    except BundleError as exc:
        print_problems(exc.problems)
        hint = ""
        if isinstance(exc, NotAllowedHere):
            hint = (
                " If you know and trust the sender, accept them with --allow-commands (command cards) or "
                "--allow-server HOST (a call server), or add the server to calls.allowed_servers in klick.yaml."
            )
        fail(f"{exc} Nothing was changed.{hint}", EXIT_INVALID)
    except OSError as exc:
        # A full or read-only disk: the half-unpacked folder is gone again, and the card file was not touched.
        fail(
            f"The card set could not be unpacked into {path.resolve().parent}: {exc.strerror or exc}. Nothing was changed.",
            EXIT_INVALID,
        )
    for note in result.notes:
        click.echo(note, err=True)
    if extra:
        try:
            unlisted = policy_problems(load_registry(path), cfg.calls.allowed_servers, True)
        except RegistryError:
            unlisted = []
        for problem in unlisted:
            click.echo(
                f"Note: {problem.message}. Add the server to calls.allowed_servers in klick.yaml, "
                "or the launcher will not start that call.",
                err=True,
            )
    kept = f" The previous card file is kept as {result.backup.name}." if result.backup else ""
    click.echo(f"Unpacked {result.cards} card{'s' if result.cards != 1 else ''} from {bundle} into {path}.{kept}")


def _size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{max(1, round(n / 1024))} kB"
    return f"{n / (1024 * 1024):.1f} MB"
