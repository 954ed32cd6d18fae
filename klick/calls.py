"""Which call servers may use the tablet's camera and microphone.

A video call card names its server. Only servers the installer listed in ``calls.allowed_servers``
get the camera and microphone: a card from a bundle, a push or a hand edit that names any other
server is refused when unpacked, when saved and when it runs. The list is compared by origin
(scheme, host, port), the unit a browser grants permissions to, so ``meet.example.se``,
``https://meet.example.se`` and ``https://MEET.example.se/room`` are one entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["CallServerError", "call_origin", "server_allowed"]


class CallServerError(ValueError):
    """Text that is not a call server's address; the message is for an installer's eyes."""


def call_origin(text: str) -> str:
    """``https://host[:port]`` for a server address or a bare host name; raise :class:`CallServerError`."""
    if not isinstance(text, str) or not text.strip():
        raise CallServerError("a call server must be a web address such as https://meet.example.se")
    raw = text.strip()
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    if parts.scheme != "https":
        raise CallServerError(f"a call server must use https://, not {parts.scheme}://")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise CallServerError(f"{raw!r} has a port that is not a number") from None
    if not host or parts.username is not None or parts.password is not None:
        raise CallServerError(f"{raw!r} is not a server address such as https://meet.example.se")
    return f"https://{host}" + (f":{port}" if port not in (None, 443) else "")


def server_allowed(url: str, allowed: Iterable[str]) -> bool:
    """True when the call server ``url`` is one of the ``allowed`` servers (any spelling)."""
    try:
        origin = call_origin(url)
    except CallServerError:
        return False
    for entry in allowed:
        try:
            if call_origin(entry) == origin:
                return True
        except CallServerError:
            continue
    return False
