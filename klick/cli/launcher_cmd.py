"""`klick launcher`: the full-screen launcher (Kivy is imported only inside the command)."""

from __future__ import annotations

import os

import click

from klick.cli.common import EXIT_USAGE, config_option, fail, get_config, plain_errors


@click.command()
@config_option
@click.option(
    "--demo", is_flag=True, help="Demo cards and a simulated reader, with its own bridge; keys 1-5 insert a card, 0 takes it out."
)
@click.option(
    "--offscreen", is_flag=True, help="Run without a display (tests, benchmarks); also set by KLICK_LAUNCHER_OFFSCREEN=1."
)
@click.option(
    "--screenshot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Save the home screen as a PNG once it is drawn, then close.",
)
@click.option(
    "--locale",
    type=click.Choice(["sv", "en"]),
    default=None,
    help="The language on the screen, in place of the settings' locale (sv or en).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show Kivy's own log lines too.")
@plain_errors
def launcher(
    config_path: str | None, demo: bool, offscreen: bool, screenshot: str | None, locale: str | None, verbose: bool
) -> None:
    """Show the launcher: the card in the slot decides what happens.

    SIGTERM (systemctl stop) and SIGINT (Ctrl+C) end it within two seconds, with exit status 0:
    the running program's whole process group first, then the usage log, then the window.
    """
    from launcher.kivy_setup import OFFSCREEN_ENV, configure_kivy, has_display, missing_for_compositor
    from launcher.stopping import catch_stop_signals

    offscreen = offscreen or os.environ.get(OFFSCREEN_ENV) == "1"
    if not offscreen and not has_display():
        fail("No screen to show the launcher on (DISPLAY and WAYLAND_DISPLAY are not set).", EXIT_USAGE)
    if not offscreen and (problem := missing_for_compositor()):
        fail(problem, EXIT_USAGE)
    # From here a stop signal is noted and honoured once the app runs, never fatal half-way.
    catch_stop_signals()
    _log_to_stderr()
    bridge = None
    uids: tuple[str, ...] = ()
    if demo:
        from launcher.demo import demo_uids, prepare_demo_home, start_bridge

        try:
            home = prepare_demo_home()
        except FileNotFoundError as exc:
            fail(f"The demo cannot start: {exc}.", EXIT_USAGE)
        os.environ["KLICK_HOME"] = str(home.home)
        cfg = get_config(str(home.config))
        uids = demo_uids(home.cards)
        try:
            bridge = start_bridge(cfg)
        except RuntimeError as exc:
            fail(f"The demo cannot start: {str(exc).rstrip('.')}.", EXIT_USAGE)
    else:
        cfg = get_config(config_path)
    if locale is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, locale=locale)
    try:
        configure_kivy(cfg, verbose=verbose, offscreen=offscreen)
        from launcher.app import run_launcher
        from launcher.probes import home_screenshot

        run_launcher(cfg, demo_uids=uids, probe=home_screenshot(screenshot) if screenshot else None)
    finally:
        if bridge is not None:
            from launcher.demo import stop_bridge

            stop_bridge(bridge)


def _log_to_stderr() -> None:
    """The launcher's own messages (a broken card file, a missing usage database) go to stderr,
    which systemd puts in the journal; Kivy's console log stays off unless --verbose."""
    import logging

    logger = logging.getLogger("klick")
    if not any(getattr(h, "_klick_launcher", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("klick launcher: %(message)s"))
        handler._klick_launcher = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
