"""Demo mode (`make run`): the demo cards, a simulated reader, and a bridge started alongside.

A demo home folder holds its own ``klick.yaml`` (simulated reader, the shipped demo card set,
a window rather than a borderless screen) so a developer's own settings are never touched.
The bridge runs as a real ``klick bridge`` child process, exactly as on the appliance, and stops
when the launcher ends, however it ends (:mod:`klick.bridge_child`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoHome", "prepare_demo_home", "start_bridge", "stop_bridge", "demo_uids", "DEMO_CALL_SERVERS"]

#: AF_UNIX socket paths are limited to 107 bytes.
MAX_SOCKET_PATH = 100
#: The call servers the demo cards use; only these get the camera (calls.allowed_servers).
DEMO_CALL_SERVERS = ("https://meet.jit.si",)


@dataclass(frozen=True)
class DemoHome:
    home: Path
    config: Path
    cards: Path


#: Where the demo keeps its settings, log and database, if not the checkout's .klick-demo/.
DEMO_HOME_ENV = "KLICK_DEMO_HOME"


def _default_home() -> Path:
    from klick.config import shipped_config_dir

    if os.environ.get(DEMO_HOME_ENV):
        return Path(os.environ[DEMO_HOME_ENV])
    shipped = shipped_config_dir()
    if shipped is not None and os.access(shipped.parent, os.W_OK):
        return shipped.parent / ".klick-demo"
    return Path(tempfile.gettempdir()) / f"klick-demo-{os.getuid()}"


def prepare_demo_home(home: Path | None = None) -> DemoHome:
    """Write the demo's settings; the card file is the shipped ``config/demo-cards.yaml``."""
    from klick.atomic import write_atomic
    from klick.config import shipped_config_dir

    shipped = shipped_config_dir()
    if shipped is None or not (shipped / "demo-cards.yaml").is_file():
        raise FileNotFoundError("the demo card set (config/demo-cards.yaml) is not here; run the demo from a Klick checkout")
    home = Path(home) if home is not None else _default_home()
    home.mkdir(parents=True, exist_ok=True)
    socket = home / "bridge.sock"
    if len(str(socket)) > MAX_SOCKET_PATH:
        socket = Path(tempfile.mkdtemp(prefix="klick-demo-")) / "bridge.sock"
    cards = shipped / "demo-cards.yaml"
    text = (
        "# Written by `klick launcher --demo`; changes are overwritten at the next demo start.\n"
        "reader:\n  driver: sim\n  mode: slot\n"
        "locale: sv\n"
        "display:\n  fullscreen: false\n"
        f"paths:\n  registry: {cards}\n  socket: {socket}\n"
        "pilot:\n  device_name: demo\n  enrolled: true\n"
        "calls:\n  allowed_servers:\n" + "".join(f"    - {server}\n" for server in DEMO_CALL_SERVERS) + _browser_setting()
    )
    config = home / "klick.yaml"
    write_atomic(config, text.encode("utf-8"))
    return DemoHome(home, config, cards)


def _browser_setting() -> str:
    """The demo's browser: the default Chromium when it is installed, else the stand-in.

    Without a browser, every web card would go straight to "could not start"; the stand-in
    keeps the card screen up instead and logs the address a tablet would open.

    Chromium refuses to run as root without ``--no-sandbox`` (a fresh VM's ``make run`` runs as
    root): only the demo adds it, and says so. The appliance runs the launcher as the klick
    user, with Chromium's sandbox.
    """
    import json
    import logging
    import shutil

    from klick.config import DEFAULT_BROWSER

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            command = [name, *DEFAULT_BROWSER[1:]]
            if os.geteuid() == 0:
                command.append("--no-sandbox")
                logging.getLogger("klick.launcher.demo").warning(
                    "The demo runs as root, so its Chromium runs without its sandbox (--no-sandbox); "
                    "an appliance never does this: there the launcher runs as the klick user."
                )
            break
    else:
        command = [sys.executable, "-m", "launcher.demo_browser"]
    return "browser:\n  command: " + json.dumps(command) + "\n"


def demo_uids(cards: Path) -> tuple[str, ...]:
    """The UIDs keys 1-5 insert: the demo cards in file order."""
    from cards.registry import load_registry

    return tuple(card.uid for card in load_registry(cards).cards[:5])


def start_bridge(cfg: Any) -> Any:
    """A real `klick bridge` with the simulated reader, as the demo's child; returns once its
    socket answers (a :class:`klick.bridge_child.BridgeChild`).

    Started with ``--until-stdin-closes`` (:mod:`klick.bridge_child`): however the launcher ends
    (closed, Ctrl+C, killed), the kernel closes the pipe and the bridge stops with it. Raises
    RuntimeError with the reason, in plain words, when it cannot start.
    """
    from klick.bridge_child import BridgeStartError
    from klick.bridge_child import start_bridge as start_child

    try:
        child = start_child(cfg)
    except BridgeStartError as exc:
        raise RuntimeError(exc.reason) from None
    if child is None:  # only when cancelled, which the demo never does
        raise RuntimeError("the demo bridge was cancelled as it started")
    return child


def stop_bridge(child: Any) -> None:
    child.stop()
