"""The demo's stand-in for a kiosk browser, used only when no Chromium is installed.

It stays open like a browser would, so the demo shows the card screen for as long as the card
is in, and it writes the address it was asked to open, so a developer can see what a real
tablet would have opened. Taking the card out ends it like any other program.

The launcher opens every page over the DevTools pipe (descriptors 3 and 4, ``--remote-debugging-
pipe``), so the stand-in answers the few commands the launcher sends there: a page that loads
at once and has no Jitsi in it.
"""

from __future__ import annotations

import json
import os
import signal
import sys

PAGE = "demo-page"
SESSION = "demo-session"


def answer(message: dict) -> list[dict]:
    """The replies (and events) a browser would send for one command."""
    method, ident = message.get("method"), message.get("id")
    if method == "Browser.getVersion":
        return [{"id": ident, "result": {"product": "Klick demo stand-in"}}]
    if method == "Target.getTargets":
        return [{"id": ident, "result": {"targetInfos": [{"targetId": PAGE, "type": "page", "url": "about:blank"}]}}]
    if method == "Target.attachToTarget":
        return [{"id": ident, "result": {"sessionId": SESSION}}]
    if method == "Page.navigate":
        url = message.get("params", {}).get("url", "")
        print(f"demo: no browser is installed; a tablet would open {url}", flush=True)
        return [
            {"id": ident, "result": {"frameId": PAGE, "loaderId": "demo"}, "sessionId": SESSION},
            {"method": "Page.domContentEventFired", "params": {}, "sessionId": SESSION},
        ]
    reply: dict[str, object] = {"id": ident, "result": {}}
    if "sessionId" in message:
        reply["sessionId"] = message["sessionId"]
    return [reply]


def serve(read_fd: int, write_fd: int) -> None:
    buf = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            return  # the launcher let go: a browser quits
        buf += chunk
        while b"\0" in buf:
            raw, buf = buf.split(b"\0", 1)
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if isinstance(message, dict):
                for out in answer(message):
                    os.write(write_fd, json.dumps(out).encode() + b"\0")


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if "--remote-debugging-pipe" in argv:
        try:
            serve(3, 4)
        except OSError:
            pass
        return
    address = next((a for a in argv if not a.startswith("-")), "(no address)")
    print(f"demo: no browser is installed; a tablet would open {address}", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1:])
