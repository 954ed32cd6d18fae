"""``klick pilot withdraw``: a resident (or their representative) withdraws consent on this device.

GDPR art. 7(3): withdrawing must be as easy as giving consent. One command deletes every
personal row from the usage log, in one transaction, and keeps only reader health and the date.
It is safe while the launcher runs: the launcher's writer sees the withdrawal inside its next
transaction and writes no card event again.
"""

from __future__ import annotations

import click

from klick.cli.common import EXIT_INVALID, config_option, fail, get_config, plain_errors


@click.group()
def pilot() -> None:
    """The pilot's consent on this device."""


@pilot.command()
@config_option
@click.option("--yes", is_flag=True, help="Do not ask before deleting.")
@plain_errors
def withdraw(config_path: str | None, yes: bool) -> None:
    """Withdraw consent: delete every card use, session, question and answer on this device.

    Only reader health (when the reader was connected or lost) and the date of withdrawal are
    kept. From then on the device records nothing else, even if klick.yaml still says
    pilot.enrolled: true, until a consent_date later than the withdrawal is set.

    \b
    Example:
      sudo -u klick klick pilot withdraw --config /etc/klick/klick.yaml
    """
    from klick.usage import UsageDbError, withdraw_consent

    cfg = get_config(config_path)
    path = cfg.paths.usage_db
    if not yes:
        try:
            sure = click.confirm(
                f"Delete every card use, session, question and answer in {path}? "
                "Only reader health and today's date are kept. This cannot be undone",
                default=False,
            )
        except click.Abort:
            sure = False
        if not sure:
            fail("Nothing was deleted.", EXIT_INVALID)
    try:
        done = withdraw_consent(path)
    except UsageDbError as exc:
        fail(f"Consent was not withdrawn: {exc}", EXIT_INVALID)
    d = done.deleted
    questions = d.get("prompts", 0)
    click.echo(
        f"Consent withdrawn on {done.withdrawn_on.isoformat()}: deleted {d.get('events', 0):,} card events, "
        f"{d.get('sessions', 0):,} sessions, {questions:,} questions and {d.get('answers', 0):,} answers from {path}."
    )
    if done.damaged_deleted:
        click.echo("The usage log was damaged, so it was deleted whole and a new, empty one started.")
    if done.removed_files:
        click.echo(f"Also deleted {len(done.removed_files)} damaged copies of the log that had been moved aside.")
    click.echo("Kept: reader health (when the reader was connected or lost) and the date of withdrawal.")
    where = f" ({cfg.source})" if cfg.source else ""
    if cfg.pilot.enrolled:
        click.echo(
            f"Also set pilot.enrolled: false in klick.yaml{where}. Until then the device still keeps nothing but reader "
            "health; only a consent_date later than today starts the log again."
        )
    else:
        click.echo(f"klick.yaml{where} already says pilot.enrolled: false.")
