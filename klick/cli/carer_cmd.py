"""`klick carer`: the carer's desktop window over the cards, and `klick carer pin` for the PIN."""

from __future__ import annotations

from pathlib import Path

import click

from klick.cli.common import EXIT_INVALID, EXIT_USAGE, config_option, fail, get_config, plain_errors


@click.group(invoke_without_command=True)
@config_option
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Card file (cards.yaml) or card bundle (.klick) to edit instead of paths.registry.",
)
@click.option(
    "--locale", type=click.Choice(["sv", "en"]), default=None, help="Language of the window instead of locale in the settings."
)
@click.pass_context
@plain_errors
def carer(ctx: click.Context, config_path: str | None, registry_path: str | None, locale: str | None) -> None:
    """Open the carer's window: see the cards, program a new card, change or remove one.

    \b
      klick carer                          the cards in the settings' card file
      klick carer --registry mamma.klick   edit a card bundle (saved back into it)
      klick carer pin                      make the carer PIN line for klick.yaml
    """
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import replace

    cfg = get_config(config_path)
    if locale:
        cfg = replace(cfg, locale=locale)
    target = Path(registry_path) if registry_path else cfg.paths.registry
    bundle = target if target.suffix.lower() == ".klick" else None

    from cards.carer.session import EditorSession, SessionError

    try:
        session = EditorSession(None if bundle else target, bundle=bundle, allowed_servers=cfg.calls.allowed_servers)
    except SessionError as exc:
        fail(f"{exc}\nThe card file has problems; fix them (`klick cards check`) and try again.", EXIT_INVALID)
    try:
        from cards.carer.app import run_app  # Kivy is loaded only here, when the window opens
    except ImportError as exc:
        session.close()
        fail(f"The carer window cannot open: {exc}.", EXIT_USAGE)
    push = None
    if cfg.fleet.host:  # "Send to the tablet…" only where this computer can push (a broker and the office key)
        from fleet.push import carer_push

        push = carer_push(cfg)
    try:
        run_app(cfg, session, push=push)
    finally:
        session.close()


@carer.command()
def pin() -> None:
    """Choose the carer PIN (6 to 12 digits); prints the line to put in klick.yaml. The PIN itself is stored nowhere."""
    from klick.pin import MAX_DIGITS, MIN_DIGITS, hash_pin, pin_problem

    first = click.prompt(
        f"New carer PIN ({MIN_DIGITS} to {MAX_DIGITS} digits)", hide_input=True, default="", show_default=False
    ).strip()
    second = click.prompt("The same PIN again", hide_input=True, default="", show_default=False).strip()
    if first != second:
        fail("The two PINs are not the same; nothing was made. Try again.", EXIT_USAGE)
    problem = pin_problem(first)
    if problem:
        fail(f"{problem} Nothing was made. Try again.", EXIT_USAGE)
    click.echo("Put this in klick.yaml (replacing the pin_hash line there):")
    click.echo("")
    click.echo("carer:")
    click.echo(f'  pin_hash: "{hash_pin(first)}"')
