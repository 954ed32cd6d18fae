"""The demo's stand-in for a kiosk browser, used only when no Chromium is installed.

It stays open like a browser would, so the demo shows the card screen for as long as the card
is in, and it writes the address it was given, so a developer can see what a real tablet would
have opened. Taking the card out ends it like any other program.
"""

from __future__ import annotations

import signal
import sys


def main(argv: list[str]) -> None:
    address = next((a for a in argv if not a.startswith("-")), "(no address)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"demo: no browser is installed; a tablet would open {address}", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1:])
