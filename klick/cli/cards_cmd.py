"""`klick cards ...`: the carer's command-line tools for the card registry."""

from __future__ import annotations

from pathlib import Path

import click

from klick.cli.cards_print_bundle_cmd import pack, print_cmd, unpack
from klick.cli.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    config_option,
    fail,
    get_config,
    plain_errors,
    print_problems,
    registry_option,
)
from klick.cli.common import (
    registry_path_for as _registry_path,
)
from klick.uid import UidError, normalise_uid

ACTION_CHOICES = ["video_call", "svt_play", "photo_album", "web", "command"]


def _load(path: Path, *, missing_ok: bool = False):
    from cards.registry import RegistryError, load_registry

    if not path.exists() and not missing_ok:
        fail(f"There is no card file at {path} yet. Add a card with `klick cards add`.", EXIT_INVALID)
    try:
        return load_registry(path, missing_ok=missing_ok)
    except RegistryError as exc:
        print_problems(exc.problems)
        fail(f"The card file {path} has problems; nothing was changed. Fix the lines above and try again.", EXIT_INVALID)


def _change(path: Path, change, *, missing_ok: bool = True) -> None:
    """Read, change and save the card file while no other program changes it (an unpack, say)."""
    from cards.registry import CardSetBusy, RegistryError, change_card_set

    try:
        change_card_set(path, change, missing_ok=missing_ok)
    except CardSetBusy as exc:
        fail(f"{exc} Nothing was changed.", EXIT_INVALID)
    except RegistryError as exc:
        print_problems(exc.problems)
        fail("The card file has the problems above; nothing was changed.", EXIT_INVALID)


def _uid(text: str) -> str:
    try:
        return normalise_uid(text)
    except UidError as exc:
        fail(f"That is not a card ID: {exc}.", EXIT_USAGE)


@click.group()
def cards() -> None:
    """List, check and change the cards (cards.yaml)."""


@cards.command("list")
@config_option
@registry_option
@plain_errors
def list_cards(config_path: str | None, registry_path: str | None) -> None:
    """Show every card: its ID, label and what it does."""
    from cards.describe import describe

    path = _registry_path(config_path, registry_path)
    if not path.exists():
        click.echo(f"No cards yet ({path} does not exist). Add one with `klick cards add`.")
        return
    registry = _load(path)
    for warning in registry.warnings:
        click.echo(str(warning), err=True)
    if not registry.cards:
        click.echo("No cards yet. Add one with `klick cards add`.")
        return
    width = max(len(card.uid) for card in registry.cards)
    for card in registry.cards:
        state = "" if card.enabled else "  (switched off)"
        click.echo(f"{card.uid:<{width}}  {card.label:<16}  {describe(card, 'en')}{state}")
    click.echo(f"{len(registry.cards)} card{'s' if len(registry.cards) != 1 else ''} in {path}")


@cards.command()
@click.argument("uid")
@config_option
@registry_option
@plain_errors
def show(uid: str, config_path: str | None, registry_path: str | None) -> None:
    """Show one card in full."""
    from cards.describe import describe
    from cards.registry import Registry, registry_to_yaml

    path = _registry_path(config_path, registry_path)
    registry = _load(path)
    card = registry.get(_uid(uid))
    if card is None:
        fail(f"No card with ID {normalise_uid(uid)} in {path}. `klick cards list` shows the cards there.", EXIT_INVALID)
    click.echo(f"{card.label}: {describe(card, 'en')}")
    text = registry_to_yaml(Registry((card,)), path.resolve().parent)
    click.echo(text.split("cards:\n", 1)[1].rstrip())


@cards.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@config_option
@plain_errors
def check(file: str | None, config_path: str | None) -> None:
    """Check a card file; every problem is shown with its line. Exit 0 when it is usable."""
    from cards.registry import check_registry

    path = Path(file) if file else get_config(config_path).paths.registry
    registry, problems = check_registry(path, display=str(file or path))
    print_problems(problems)
    if registry is None:
        n = sum(1 for p in problems if p.severity == "error")
        fail(f"{n} problem{'s' if n != 1 else ''} to fix in {file or path}.", EXIT_INVALID)
    click.echo(f"{file or path}: {len(registry)} card{'s' if len(registry) != 1 else ''}, all fine.")


def action_options(func):
    options = [
        click.option("--type", "action_type", type=click.Choice(ACTION_CHOICES), help="What the card does."),
        click.option("--provider", type=click.Choice(["jitsi", "teams", "skype"]), help="video_call: which service."),
        click.option("--server", help="video_call jitsi: the server, e.g. https://meet.example.se"),
        click.option("--room", help="video_call jitsi: the room name."),
        click.option("--display-name", help="video_call jitsi: the name the others see."),
        click.option("--user", help="video_call teams: who to call (e-mail)."),
        click.option("--name", help="video_call skype: the Skype name."),
        click.option("--channel", help="svt_play: a channel such as svt1."),
        click.option("--program", help="svt_play: a program path such as /rapport."),
        click.option("--folder", help="photo_album: the folder with the photos."),
        click.option("--url", help="web (or photo_album fallback): an https:// address."),
        click.option("--label", help="The word on the card, e.g. Anna."),
        click.option(
            "--colour", "--color", "colour", help="A colour name (blue, green, red, purple, orange, yellow) or #RRGGBB."
        ),
        click.option("--picture", type=click.Path(dir_okay=False), help="A picture file for the card face."),
        click.option("--on-remove", type=click.Choice(["close", "keep"]), help="What taking the card out does."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _action_dict(action_type: str | None, argv: tuple[str, ...], **fields) -> dict | None:
    if action_type is None:
        return None
    keys = {
        "video_call": ["provider", "server", "room", "display_name", "user", "name"],
        "svt_play": ["channel", "program"],
        "photo_album": ["folder", "url"],
        "web": ["url"],
        "command": [],
    }[action_type]
    unused = [f"--{k.replace('_', '-')}" for k, v in fields.items() if v and k not in keys]
    if unused:
        takes = ", ".join(f"--{k.replace('_', '-')}" for k in keys) or "the program after --"
        fail(
            f"{' and '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by --type {action_type} "
            f"(it takes {takes}); nothing was changed.",
            EXIT_USAGE,
        )
    if action_type == "command":
        if not argv:
            fail(
                "A command card needs the program after `--`, e.g.  klick cards add UID --label Klocka --type command -- xclock",
                EXIT_USAGE,
            )
        return {"type": "command", "argv": list(argv)}
    out = {"type": action_type}
    out.update({k: fields[k] for k in keys if fields.get(k)})
    return out


def _with_card(registry, path: Path, card_dict: dict, *, replace_existing: bool):
    """``registry`` with one card (as the file would hold it) put in, checked as the file is."""
    import yaml

    from cards.registry import parse_registry_text

    base = path.resolve().parent
    text = yaml.safe_dump({"version": 1, "cards": [card_dict]}, allow_unicode=True, sort_keys=False)
    checked, problems = parse_registry_text(text, base, "the new card")
    for p in problems:
        click.echo(f"{p.message}" if p.severity == "error" else f"warning: {p.message}", err=True)
    if checked is None:
        fail("The card was not saved; nothing was changed.", EXIT_INVALID)
    card = checked.cards[0]
    try:
        return registry.with_card(card, replace_existing=replace_existing)
    except KeyError:
        existing = registry.get(card.uid)
        fail(
            f'Card {card.uid} is already set up as "{existing.label}". Use --replace to change what it does, '
            f"or `klick cards edit {card.uid}`.",
            EXIT_INVALID,
        )


@cards.command(context_settings={"ignore_unknown_options": False})
@click.argument("uid")
@action_options
@click.option("--replace", "replace_existing", is_flag=True, help="Replace the card if it is already set up.")
@click.argument("argv", nargs=-1)
@config_option
@registry_option
@plain_errors
def add(uid, action_type, argv, replace_existing, label, colour, picture, on_remove, config_path, registry_path, **fields):
    """Set up a card. Examples:

    \b
      klick cards add 04A2B3C4 --label Anna --type video_call --provider jitsi \\
          --server https://meet.example.se --room familjen --display-name Mamma
      klick cards add 04B1C2D3 --label Rapport --type svt_play --program /rapport
      klick cards add 0012345678 --label Klocka --type command -- xclock -digital
    """
    path = _registry_path(config_path, registry_path)
    uid = _uid(uid)
    if not label:
        fail("Give the card a label with --label, e.g. --label Anna.", EXIT_USAGE)
    if not action_type:
        fail(f"Say what the card does with --type ({', '.join(ACTION_CHOICES)}).", EXIT_USAGE)
    if argv and action_type != "command":
        fail(f"Extra words after the options ({' '.join(argv)}) are only for --type command.", EXIT_USAGE)
    card = {"uid": uid, "label": label}
    if colour:
        card["colour"] = colour
    if picture:
        card["picture"] = str(Path(picture).resolve())
    card["action"] = _action_dict(action_type, argv, **fields)
    if on_remove:
        card["on_remove"] = on_remove
    _load(path, missing_ok=True)  # says what is wrong with the file before waiting for it
    _change(path, lambda registry: _with_card(registry, path, card, replace_existing=replace_existing))
    click.echo(f'Saved card {uid} "{label}" in {path}.')


@cards.command()
@click.argument("uid")
@action_options
@click.option("--enable/--disable", "enabled", default=None, help="Switch the card on or off.")
@click.argument("argv", nargs=-1)
@config_option
@registry_option
@plain_errors
def edit(uid, action_type, argv, enabled, label, colour, picture, on_remove, config_path, registry_path, **fields):
    """Change some fields of a card that is set up; the rest stay as they are."""
    path = _registry_path(config_path, registry_path)
    key = _uid(uid)
    _load(path)  # says what is wrong with the file before waiting for it
    saved: dict = {}

    def change(registry):
        """The card as it is now, under the lock: a change saved meanwhile by another program stays."""
        card = registry.get(key)
        if card is None:
            fail(f"No card with ID {key} in {path}. Use `klick cards add` to set it up.", EXIT_INVALID)
        saved.update(_edited(card, path, action_type, argv, enabled, label, colour, picture, on_remove, fields))
        return _with_card(registry, path, saved, replace_existing=True)

    _change(path, change, missing_ok=False)
    click.echo(f'Saved card {key} "{saved["label"]}" in {path}.')


def _edited(card, path: Path, action_type, argv, enabled, label, colour, picture, on_remove, fields) -> dict:
    """``card`` as the file would hold it, with the fields `klick cards edit` was given changed."""
    import yaml

    from cards.registry import Registry, registry_to_yaml

    current = yaml.safe_load(registry_to_yaml(Registry((card,)), path.resolve().parent))["cards"][0]
    if label:
        current["label"] = label
    if colour:
        current["colour"] = colour
    if picture:
        current["picture"] = str(Path(picture).resolve())
    if on_remove:
        current["on_remove"] = on_remove
    if enabled is not None:
        current["enabled"] = enabled
    if action_type:
        current["action"] = _action_dict(action_type, argv, **fields)
    elif any(fields.values()) or argv:
        if "action" not in current:
            fail("This card has no action; give one with --type.", EXIT_USAGE)
        action = current["action"]
        if action["type"] == "command" and argv:
            action["argv"] = list(argv)
        for key, value in fields.items():
            if value:
                action[key] = value
    return current


@cards.command()
@click.argument("uid")
@config_option
@registry_option
@plain_errors
def remove(uid: str, config_path: str | None, registry_path: str | None) -> None:
    """Remove a card from the set (the previous file is kept as .bak)."""
    path = _registry_path(config_path, registry_path)
    key = _uid(uid)
    _load(path)  # says what is wrong with the file before waiting for it
    removed = []

    def change(registry):
        card = registry.get(key)
        if card is None:
            fail(f"No card with ID {key} in {path}; nothing was changed.", EXIT_INVALID)
        removed.append(card)
        return registry.without(key)

    _change(path, change, missing_ok=False)
    card = removed[0]
    click.echo(f'Removed card {key} "{card.label}". The previous card file is kept as {path.name}.bak.')


# Printing and bundles live in their own module (klick.cli.cards_print_bundle_cmd).
for _command in (print_cmd, pack, unpack):
    cards.add_command(_command)
