"""`klick doctor`: the installer's check-up, one line per check, each with its fix."""

from __future__ import annotations

import sys

import click

from klick.cli.common import EXIT_INVALID, EXIT_OK, config_option


@click.command()
@config_option
def doctor(config_path: str | None) -> None:
    """Check settings, cards, reader, permissions, bridge, browser, speech and disk; say how to fix each.

    Exit 0 when all is well, 1 when something needs fixing.
    """
    from klick.cli.doctor_checks import run_doctor

    findings = run_doctor(config_path)
    for finding in findings:
        click.echo(finding.line())
    to_fix = [f for f in findings if not f.ok]
    if to_fix:
        click.echo(f"{len(to_fix)} thing{'s' if len(to_fix) != 1 else ''} to fix.")
        sys.exit(EXIT_INVALID)
    click.echo(f"All {len(findings)} checks are fine.")
    sys.exit(EXIT_OK)
