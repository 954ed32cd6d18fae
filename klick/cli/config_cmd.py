"""`klick config show|check`: what the settings are and where each one came from."""

from __future__ import annotations

import click

from klick.cli.common import EXIT_OK, config_option, get_config


@click.group()
def config() -> None:
    """Show or check the settings (klick.yaml)."""


@config.command()
@config_option
def show(config_path: str | None) -> None:
    """Print every setting, its value, and the file and line it came from."""
    cfg = get_config(config_path)
    click.echo(f"Settings file: {cfg.source or 'none found; every setting is a default'}")
    width = max(len(name) for name, _ in cfg.flat())
    for name, value in cfg.flat():
        if name == "pilot.export_key" and value:
            value = "(set, hidden)"
        elif name == "carer.pin_hash" and value:
            value = "(set, hidden)"
        elif isinstance(value, tuple):
            value = " ".join(value)
        elif value is None:
            value = "-"
        click.echo(f"{name:<{width}}  {value}    [{cfg.origins.get(name, 'default')}]")


@config.command()
@config_option
def check(config_path: str | None) -> None:
    """Check the settings file; exit 0 when it is usable, 2 when it is not."""
    cfg = get_config(config_path)
    where = cfg.source or "the built-in defaults (no klick.yaml found)"
    click.echo(f"The settings in {where} are fine.")
    raise SystemExit(EXIT_OK)
