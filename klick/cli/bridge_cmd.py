"""`klick bridge`, `klick watch`, `klick simulate`: run the reader daemon, see it, drive it."""

from __future__ import annotations

import logging
import sys
import time

import click

from klick.cli.common import EXIT_INVALID, EXIT_USAGE, config_option, fail, get_config, plain_errors

DRIVER_CHOICES = ["sim", "serial", "nfc", "hid"]


@click.command()
@config_option
@click.option(
    "--driver",
    type=click.Choice(DRIVER_CHOICES),
    default=None,
    help="Reader driver to use instead of reader.driver in the settings (for tests and demos).",
)
@click.option("--device", default=None, help="Reader device to use instead of reader.device in the settings.")
@click.option("-v", "--verbose", is_flag=True, help="Also log what the reader driver itself says.")
@click.option(
    "--until-stdin-closes",
    is_flag=True,
    help="Stop when stdin closes: for a program that starts a bridge for its own session (the carer window) "
    "and holds the other end of a pipe, so the bridge ends with it however it ends.",
)
@plain_errors
def bridge(config_path: str | None, driver: str | None, device: str | None, verbose: bool, until_stdin_closes: bool) -> None:
    """Run the card reader daemon: reader events on the socket in paths.socket."""
    from dataclasses import replace

    from firmware_bridge.daemon import Bridge, setup_logging, with_driver
    from firmware_bridge.server import BridgeAlreadyRunning, SocketPathError

    cfg = with_driver(get_config(config_path), driver)
    if device is not None:
        cfg = replace(cfg, reader=replace(cfg.reader, device=device))
    stdin = _stdin_to_watch() if until_stdin_closes else None
    setup_logging(logging.INFO, driver_level=logging.INFO if verbose else logging.WARNING)
    daemon = Bridge(cfg)
    try:
        daemon.open()
    except BridgeAlreadyRunning as exc:
        fail(str(exc), EXIT_INVALID)
    except SocketPathError as exc:
        fail(str(exc), EXIT_USAGE)
    if stdin is not None:
        _stop_when_closed(daemon, stdin)
    daemon.run()


def _stdin_to_watch() -> int:
    """stdin's descriptor, if it can tell when its other end closes (a pipe, a socket, a terminal)."""
    import os
    import stat

    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, ValueError, OSError):
        fail("--until-stdin-closes needs a stdin, and there is none.", EXIT_USAGE)
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
        fail(
            "--until-stdin-closes needs stdin to be a pipe from the program that starts the bridge; a file never closes.",
            EXIT_USAGE,
        )
    return fd


def _stop_when_closed(daemon, fd: int) -> None:
    """End the bridge when the other end of ``fd`` (stdin) closes: the program that started it has ended.

    The kernel closes a pipe's end when its holder exits in any way (a closed window, a crash,
    SIGKILL), so a bridge started for one session never outlives it and never keeps the reader.
    Whatever is written into the pipe is read and ignored.
    """
    import os

    log = logging.getLogger("klick.bridge")
    said: list[bool] = []

    def readable() -> None:
        try:
            data = os.read(fd, 4096)  # the selector said it is readable, so this does not block
        except OSError:
            data = b""
        if not data:
            if not said:
                log.info("Stopping: the program that started this bridge has ended.")
                said.append(True)
            daemon.stop()

    daemon.server.watch(fd, readable)


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON lines instead of plain text.")
@plain_errors
def watch(config_path: str | None, as_json: bool) -> None:
    """Print the card reader's events as they happen (Ctrl+C to stop)."""
    from firmware_bridge.daemon import describe_event
    from klick.bridge_client import BridgeUnavailable, iter_events
    from klick.events import encode_event

    socket_path = get_config(config_path).paths.socket
    try:
        for event in iter_events(socket_path, hello="watch"):
            if as_json:
                click.echo(encode_event(event).decode(), nl=False)
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
                click.echo(f"{stamp}  {describe_event(event)}")
    except BridgeUnavailable as exc:
        fail(str(exc), EXIT_INVALID)
    except KeyboardInterrupt:
        return
    fail("The card reader bridge stopped.", EXIT_INVALID)


@click.group()
def simulate() -> None:
    """Put a card into the simulated reader, or take it out (bridge with driver: sim)."""


def _ask(config_path: str | None, command: dict) -> dict:
    from klick.bridge_client import BridgeUnavailable, request

    socket_path = get_config(config_path).paths.socket
    try:
        reply = request(socket_path, command)
    except BridgeUnavailable as exc:
        fail(f"{exc} Start it with `klick bridge --driver sim`.", EXIT_INVALID)
    except TimeoutError:
        fail("The card reader bridge did not answer in time.", EXIT_INVALID)
    if not reply.get("ok"):
        fail(str(reply.get("error") or "The card reader bridge refused."), EXIT_INVALID)
    return reply


@simulate.command()
@config_option
@click.argument("uid")
@plain_errors
def insert(config_path: str | None, uid: str) -> None:
    """Slot the card UID into the simulated reader."""
    from firmware_bridge.simulator import uid_bytes
    from klick.uid import UidError, normalise_uid

    try:
        uid = normalise_uid(uid)
    except UidError as exc:
        fail(f"That is not a card ID: {exc}.", EXIT_USAGE)
    try:
        uid_bytes(uid)
    except UidError as exc:
        fail(f"The simulated reader cannot use that card ID: {exc}.", EXIT_USAGE)
    _ask(config_path, {"command": "insert", "uid": uid})
    click.echo(f"Card {uid} is in the simulated reader.")


@simulate.command()
@config_option
@plain_errors
def remove(config_path: str | None) -> None:
    """Take the card out of the simulated reader."""
    _ask(config_path, {"command": "remove"})
    click.echo("The simulated reader is empty.")


@simulate.command()
@config_option
@plain_errors
def unplug(config_path: str | None) -> None:
    """Pull the simulated reader's cable (the bridge reports it lost)."""
    _ask(config_path, {"command": "unplug"})
    click.echo("The simulated reader is unplugged.")


@simulate.command()
@config_option
@plain_errors
def replug(config_path: str | None) -> None:
    """Plug the simulated reader back in."""
    _ask(config_path, {"command": "replug"})
    click.echo("The simulated reader is plugged in again.")
