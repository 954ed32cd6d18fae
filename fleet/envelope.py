"""A push as it travels: a signed envelope around a card bundle or a questionnaire.

Pure functions, no network and no disk, so hypothesis can throw any bytes at :func:`open_envelope`.

One MQTT message, retained, on ``klick/D/set/cards`` or ``klick/D/set/questionnaire``::

    <header: compact UTF-8 JSON, one line>\\n<body: the .klick bundle or the questionnaire.yaml, as is>

    {"v": 1, "kind": "cards", "device": "hbg-07", "version": 1772712153123, "name": "anna.klick",
     "at": "2026-03-05T12:02:33.123Z", "size": 48213, "sha256": "<hex of the body>", "sig": "<base64>"}

The body travels as raw bytes after the header's newline (a bundle is a zip; base64 in JSON would
make every push a third larger). ``sig`` is Ed25519, by the municipality's key, over
:func:`statement`: every other field of the header, one per line, with the body's SHA-256; so the
body, the version and the device it is meant for are all signed, and a push signed for one
tablet is refused by another. ``version`` is chosen by the pusher (milliseconds since 1970, or
one more than the tablet last reported, whichever is larger): a tablet takes only versions
newer than the one in force.

One size rule (:data:`MAX_PUSH`) for both sides: the pusher refuses to send more, the tablet
refuses to take more, and the broker's ``max_packet_size`` (config/mosquitto/klick.conf) sits
just above it, so a bigger message never reaches a tablet at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleet import signing, wire
from klick.export import time_ok

__all__ = [
    "KINDS",
    "MAX_PUSH",
    "BadPush",
    "Envelope",
    "statement",
    "seal",
    "open_envelope",
    "signed_by",
    "size_problem",
    "safe_name",
]

WIRE_VERSION = 1
#: What a push may carry.
KINDS = ("cards", "questionnaire")
#: The largest push, header included: a card set with a few dozen card pictures fits; photo
#: albums of hundreds of photos go on a USB stick (`klick cards unpack`) or as an album address.
MAX_PUSH = 16 * 1024 * 1024
MAX_HEADER = 4096
MAX_VERSION = 2**62

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_SHA = re.compile(r"[0-9a-f]{64}")
_SIG = re.compile(r"[A-Za-z0-9+/]{86}==")


class BadPush(ValueError):
    """Not a push a tablet can consider; the message says why in plain words."""


@dataclass(frozen=True)
class Envelope:
    kind: str
    device: str
    version: int
    name: str
    at: str
    size: int
    sha256: str
    sig: str
    body: bytes


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def size_problem(size: int) -> str | None:
    """The one size rule for a push, in words; None when ``size`` bytes may go."""
    if size <= MAX_PUSH:
        return None
    if _mb(size) == _mb(MAX_PUSH):
        return f"the push is {size:,} bytes; a push may be at most {MAX_PUSH:,} bytes ({_mb(MAX_PUSH)})"
    return f"the push is {_mb(size)}; a push may be at most {_mb(MAX_PUSH)}"


def safe_name(name: str, suffix: str) -> str:
    """A file name the header may carry: letters, digits, '.', '_' and '-' only, ending in ``suffix``."""
    stem = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[: 79 - len(suffix)] or "push"
    return clean + suffix


def statement(kind: str, device: str, version: int, name: str, at: str, size: int, sha256: str) -> bytes:
    """What the signature covers, one field a line (no field can hold a newline)."""
    return (
        f"klick push {WIRE_VERSION}\nkind {kind}\ndevice {device}\nversion {version}\nname {name}\n"
        f"at {at}\nsize {size}\nsha256 {sha256}\n"
    ).encode("ascii")


def seal(key: Ed25519PrivateKey, kind: str, device: str, version: int, body: bytes, *, name: str, at: str) -> bytes:
    """The message for one tablet: header, newline, body."""
    sha = hashlib.sha256(body).hexdigest()
    header = {
        "v": WIRE_VERSION,
        "kind": kind,
        "device": device,
        "version": version,
        "name": name,
        "at": at,
        "size": len(body),
        "sha256": sha,
        "sig": signing.sign(key, statement(kind, device, version, name, at, len(body), sha)),
    }
    problem = _header_problem(header)
    if problem:
        raise BadPush(problem)
    return json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n" + body


def open_envelope(payload: bytes) -> Envelope:
    """The envelope, its header checked field by field and its body against the header's hash.

    The signature is not checked here (:func:`signed_by`): a tablet refuses an unsigned push in
    its own words, after it knows which push it was.
    """
    problem = size_problem(len(payload))
    if problem:
        raise BadPush(problem)
    end = payload.find(b"\n", 0, MAX_HEADER)
    if end < 0:
        raise BadPush("it is not a Klick push (no header line)")
    try:
        header = json.loads(payload[:end].decode("utf-8"), parse_constant=wire.no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadPush("it is not a Klick push (its header is not JSON)") from None
    problem = _header_problem(header)
    if problem:
        raise BadPush(problem)
    body = payload[end + 1 :]
    if len(body) != header["size"]:
        raise BadPush(f"it arrived incomplete ({len(body):,} of {header['size']:,} bytes)")
    if hashlib.sha256(body).hexdigest() != header["sha256"]:
        raise BadPush("its contents do not match its checksum (damaged on the way)")
    return Envelope(
        kind=header["kind"],
        device=header["device"],
        version=header["version"],
        name=header["name"],
        at=header["at"],
        size=header["size"],
        sha256=header["sha256"],
        sig=header["sig"],
        body=body,
    )


def signed_by(envelope: Envelope, public: Ed25519PublicKey) -> bool:
    e = envelope
    return signing.verify(public, statement(e.kind, e.device, e.version, e.name, e.at, e.size, e.sha256), e.sig)


def _header_problem(header: Any) -> str | None:
    if not isinstance(header, dict) or header.get("v") != WIRE_VERSION:
        return "it is not a Klick push of this version"
    checks = {
        "kind": lambda v: v in KINDS,
        "device": lambda v: isinstance(v, str) and wire.check_device_name(v) is None,
        "version": lambda v: type(v) is int and 1 <= v < MAX_VERSION,
        "name": lambda v: isinstance(v, str) and bool(_NAME.fullmatch(v)),
        "at": time_ok,
        "size": lambda v: type(v) is int and 0 <= v <= MAX_PUSH,
        "sha256": lambda v: isinstance(v, str) and bool(_SHA.fullmatch(v)),
        "sig": lambda v: isinstance(v, str) and bool(_SIG.fullmatch(v)),
    }
    missing = [k for k in checks if k not in header]
    if missing == ["sig"]:
        return "it is not signed"
    if missing:
        return f"its header lacks {', '.join(missing)}"
    for key, check in checks.items():
        if not check(header[key]):
            return f"its header has a wrong {key} ({str(header[key])[:40]!r})"
    return None
