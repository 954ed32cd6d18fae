"""Kivy's settings, which must be in place before Kivy opens its window.

Full screen is an explicit size and position on a borderless window, not Kivy's fullscreen
"auto": without a window manager, plain X clips an "auto" window to a wrong size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["configure_kivy", "has_display", "OFFSCREEN_ENV"]

#: Set to 1 to run without a display (tests, benchmarks); SDL then draws into memory.
OFFSCREEN_ENV = "KLICK_LAUNCHER_OFFSCREEN"


def has_display(env: Any = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def configure_kivy(cfg: Any, *, verbose: bool = False, offscreen: bool = False) -> None:
    """Environment and ``kivy.config`` for the launcher. Call before anything imports Kivy's window."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
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

    from kivy.config import Config

    d = cfg.display
    Config.set("graphics", "width", str(d.width))
    Config.set("graphics", "height", str(d.height))
    Config.set("graphics", "position", "custom")
    Config.set("graphics", "left", str(d.left))
    Config.set("graphics", "top", str(d.top))
    Config.set("graphics", "fullscreen", "0")
    Config.set("graphics", "borderless", "1" if d.fullscreen else "0")
    Config.set("graphics", "resizable", "0")
    Config.set("graphics", "show_cursor", "0" if d.fullscreen else "1")
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("kivy", "pause_on_minimize", "0")
    # The resident types only in a questionnaire's free-text answer, with the on-screen keyboard.
    Config.set("kivy", "keyboard_mode", "systemanddock")
    # Kivy ships no Swedish layout: ours has å, ä, ö and only a few, large keys.
    Config.set("kivy", "keyboard_layout", str(Path(__file__).resolve().parent / "keyboards" / "sv.json"))
    # No red dots on right-click (multitouch emulation): nothing red, nothing surprising.
    Config.set("input", "mouse", "mouse,multitouch_on_demand")
