"""The `klick` command: one entry point for carers, pilot testers and installers.

Subcommands live in their own modules and are imported only when used, so ``klick --help``
and ``klick cards list`` start fast and never load Kivy, nfcpy or matplotlib.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from klick import __version__

#: name → "module:attribute". A module may be missing while its issue is being built.
SUBCOMMANDS = {
    "config": "klick.cli.config_cmd:config",
    "cards": "klick.cli.cards_cmd:cards",
    "bridge": "klick.cli.bridge_cmd:bridge",
    "watch": "klick.cli.bridge_cmd:watch",
    "simulate": "klick.cli.bridge_cmd:simulate",
    "export": "klick.cli.export_cmd:export",
    "report": "klick.cli.export_cmd:report",
    "launcher": "klick.cli.launcher_cmd:launcher",
    "carer": "klick.cli.carer_cmd:carer",
    "doctor": "klick.cli.doctor_cmd:doctor",
    "pilot": "klick.cli.pilot_cmd:pilot",
    "fleet": "klick.cli.fleet_cmd:fleet",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in SUBCOMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="klick", message="%(prog)s %(version)s")
def cli() -> None:
    """Klick: a card-driven launcher for people who should never have to navigate a tablet."""


def main() -> None:
    """Console-script entry: runs the CLI, and turns any unexpected failure into one sentence.

    A carer never sees a traceback; an installer who wants one sets KLICK_DEBUG=1.
    """
    try:
        cli.main(prog_name="klick", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last guard: everything expected is handled closer to its cause
        if os.environ.get("KLICK_DEBUG"):
            raise
        click.echo(
            f"Klick could not finish: {exc or type(exc).__name__}. Nothing was changed. (Set KLICK_DEBUG=1 to see the details.)",
            err=True,
        )
        sys.exit(1)
