"""SIGTERM and SIGINT end the launcher cleanly, on its own UI thread.

``systemctl stop`` and ``restart`` send SIGTERM; a developer's Ctrl+C sends SIGINT. Either must
end the running action (the browser's whole process group), finish the usage log's writes and
close the window within two seconds, with exit status 0, so systemd never has to SIGKILL the
launcher and a call's browser is never left behind.

A signal handler only notes the signal: the app looks at the note on Kivy's clock and stops from
there, because stopping (joining threads, closing SQLite) must not run in the middle of whatever
Python code the signal interrupted. The handlers are installed before Kivy opens its window, and
SDL's own handlers are switched off (``SDL_NO_SIGNAL_HANDLERS``, see :mod:`launcher.kivy_setup`),
so a signal that arrives while Kivy is still starting is kept, not lost or fatal.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["STOP_SIGNALS", "catch_stop_signals", "stop_signal", "signal_name"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []


def _note(signum: int, _frame: object) -> None:
    _received.append(signum)


def catch_stop_signals() -> bool:
    """Note SIGTERM and SIGINT from now on instead of dying at once. Only the main thread can
    install signal handlers; False (and nothing changed) anywhere else."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in STOP_SIGNALS:
        signal.signal(sig, _note)
    return True


def stop_signal() -> int | None:
    """The first stop signal received since :func:`catch_stop_signals`, or None."""
    return _received[0] if _received else None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
