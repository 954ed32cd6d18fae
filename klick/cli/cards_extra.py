"""`klick cards print | pack | unpack`: card faces on paper, and card sets on a USB stick.

These are plain click commands; ``klick.cli.cards_cmd`` adds them to the ``cards`` group. The
work itself lives in ``cards.printing`` and ``cards.bundle``; this module only turns options into
calls and failures into one plain sentence and an exit code.
"""

from __future__ import annotations

from pathlib import Path

import click

from klick.cli.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    config_option,
    fail,
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
        result = render_cards(cards, out, locale=_locale(config_path, locale), backs=backs)
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
    registry = _load_registry(path)
    try:
        result = pack_bundle(registry, path, out)
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
@config_option
@registry_option
@plain_errors
def unpack(bundle: str, config_path: str | None, registry_path: str | None) -> None:
    """Replace the card set with the one in a bundle; the old card file is kept as .bak.

    Everything in the bundle is checked first; if anything is wrong, nothing is changed.

    \b
      klick cards unpack /media/usb/mamma.klick
    """
    from cards.bundle import BundleError, unpack_bundle

    path = _registry_path(config_path, registry_path)
    if not Path(bundle).is_file():
        fail(f"There is no bundle at {bundle}.", EXIT_INVALID)
    try:
        result = unpack_bundle(bundle, path)
    except BundleError as exc:
        print_problems(exc.problems)
        fail(f"{exc} Nothing was changed.", EXIT_INVALID)
    for note in result.notes:
        click.echo(note, err=True)
    kept = f" The previous card file is kept as {result.backup.name}." if result.backup else ""
    click.echo(f"Unpacked {result.cards} card{'s' if result.cards != 1 else ''} from {bundle} into {path}.{kept}")


def _size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{max(1, round(n / 1024))} kB"
    return f"{n / (1024 * 1024):.1f} MB"
