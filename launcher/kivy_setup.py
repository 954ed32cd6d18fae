"""Kivy's settings, which must be in place before Kivy opens its window.

Two ways to fill the screen, by what the launcher runs under:

- **A Wayland compositor** (the appliance: ``cage``, which sets ``WAYLAND_DISPLAY``). The
  compositor owns the output, so the launcher asks for Kivy's fullscreen "auto" and takes
  whatever size the output has (1280x720, 800x1280 turned, a 1920x1200 monitor): no size to
  configure, nothing cut. Kivy's wheels bring an SDL without a Wayland video driver, so the
  window is an X11 one, drawn through XWayland, which cage starts the moment it is needed.
- **Plain X without a window manager.** Full screen is the configured size and position
  (``display.width/height/left/top``) on a borderless window: without a window manager, plain X
  clips an "auto" window to a wrong size.

SDL's own SIGTERM/SIGINT handlers are switched off: they turn a stop request into a window close
request, which the appliance refuses (only the quit keys close it). The launcher handles both
signals itself (:mod:`launcher.stopping`).

For a card's face in the next frame, and for memory, three of Kivy's defaults are changed:

- **The clock wakes for an event.** Kivy sleeps until the next frame is due; an event handed over
  from the bridge's thread would wait up to a frame for it. The "interrupt" clock wakes at once.
- **No multisampling.** Kivy draws every frame twice over by default (2x MSAA) to smooth the
  edges of round shapes; a software GL (and a small tablet GPU) pays for every pixel, and the
  buffers take 30 MB. The round shapes are drawn with Kivy's own smoothed edges instead.
- **No numpy.** sqlite-utils (the usage log's migrations) imports numpy only to name numpy's
  types, if it is installed (matplotlib brings it, for the pilot's plots); the launcher never
  uses it, and it costs 16 MB of a tablet's memory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["configure_kivy", "keep_numpy_out", "has_display", "under_compositor", "missing_for_compositor", "OFFSCREEN_ENV"]

#: Set to 1 to run without a display (tests, benchmarks); SDL then draws into memory.
OFFSCREEN_ENV = "KLICK_LAUNCHER_OFFSCREEN"


def has_display(env: Any = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def under_compositor(env: Any = None) -> bool:
    """True under a Wayland compositor (cage on the appliance): it decides the window's size."""
    env = os.environ if env is None else env
    return bool(env.get("WAYLAND_DISPLAY"))


def missing_for_compositor(env: Any = None) -> str | None:
    """What keeps the launcher from drawing under a Wayland compositor, in plain words, or None.

    Kivy's SDL speaks X11, not Wayland: under cage the window goes through XWayland, which cage
    starts on demand and sets ``DISPLAY`` for. Without the ``xwayland`` package the screen would
    stay black with no word why.
    """
    env = os.environ if env is None else env
    if not under_compositor(env) or env.get("SDL_VIDEODRIVER", "x11") != "x11":
        return None
    if shutil.which("Xwayland", path=env.get("PATH")) is None:
        return "The launcher draws through XWayland, which is not installed. Install it: sudo apt-get install xwayland"
    if not env.get("DISPLAY"):
        return "The compositor set no DISPLAY for XWayland, so the launcher has nowhere to draw."
    return None


def keep_numpy_out() -> None:
    """Make ``import numpy`` fail in this process, unless something already uses it: an import
    that fails is what sqlite-utils expects when numpy is not installed (a tried fallback)."""
    import sys

    for name in ("numpy", "pandas"):
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # None in sys.modules: Python's documented way to refuse an import


def configure_kivy(cfg: Any, *, verbose: bool = False, offscreen: bool = False) -> None:
    """Environment and ``kivy.config`` for the launcher. Call before anything imports Kivy's window."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    # SDL_HINT_NO_SIGNAL_HANDLERS: SIGTERM and SIGINT are the launcher's to handle, not SDL's.
    os.environ["SDL_NO_SIGNAL_HANDLERS"] = "1"
    if not verbose:
        os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    if "KIVY_HOME" not in os.environ:
        kivy_home = Path(cfg.paths.home) / "kivy"
        try:
            kivy_home.mkdir(parents=True, exist_ok=True)
            os.environ["KIVY_HOME"] = str(kivy_home)
        except OSError:
            pass
    if offscreen and not has_display():
        os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    keep_numpy_out()

    from kivy.config import Config

    d = cfg.display
    fill_output = d.fullscreen and under_compositor() and os.environ.get("SDL_VIDEODRIVER") != "offscreen"
    Config.set("graphics", "width", str(d.width))
    Config.set("graphics", "height", str(d.height))
    if fill_output:
        # The compositor's output, whatever its size; the configured size is only the fallback.
        Config.set("graphics", "position", "auto")
        Config.set("graphics", "fullscreen", "auto")
        Config.set("graphics", "resizable", "1")
    else:
        Config.set("graphics", "position", "custom")
        Config.set("graphics", "left", str(d.left))
        Config.set("graphics", "top", str(d.top))
        Config.set("graphics", "fullscreen", "0")
        Config.set("graphics", "resizable", "0")
    Config.set("graphics", "borderless", "1" if d.fullscreen else "0")
    Config.set("graphics", "show_cursor", "0" if d.fullscreen else "1")
    Config.set("graphics", "multisamples", "0")
    Config.set("kivy", "kivy_clock", "interrupt")
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("kivy", "pause_on_minimize", "0")
    # The resident types only in a questionnaire's free-text answer, with the on-screen keyboard.
    Config.set("kivy", "keyboard_mode", "systemanddock")
    # Kivy ships no Swedish layout: ours has å, ä, ö and only a few, large keys.
    Config.set("kivy", "keyboard_layout", str(Path(__file__).resolve().parent / "keyboards" / "sv.json"))
    # No red dots on right-click (multitouch emulation): nothing red, nothing surprising.
    Config.set("input", "mouse", "mouse,multitouch_on_demand")
