"""The carer PIN: stored only as a salted, slow hash, so klick.yaml can be read by anyone safely.

A tablet's settings file is copied around on USB sticks and shown by ``klick config show``; the
PIN itself must never be in it. PBKDF2-SHA256 from the standard library, at the 600,000 rounds
OWASP asks for, needs no extra package on the appliance. A short PIN is still few guesses for a
stolen settings file, so new PINs have at least 6 digits (a million, not ten thousand); the
launcher also limits guesses on the tablet itself.

Format: ``pbkdf2_sha256$ITERATIONS$SALT_HEX$HASH_HEX``. The rounds are part of each hash, so a
hash made by an older Klick (200,000 rounds) is still accepted; :func:`is_outdated` tells an
installer to make a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import os

__all__ = ["hash_pin", "check_pin", "pin_problem", "is_outdated", "ITERATIONS", "MIN_DIGITS", "MAX_DIGITS"]

#: PBKDF2-SHA256 rounds for new hashes (OWASP's figure): about 0.2 s on a PC, under a second on a
#: tablet, checked beside the launcher's screen, never on it.
ITERATIONS = 600_000
SCHEME = "pbkdf2_sha256"
#: For new PINs. Checking a PIN takes any length up to MAX_DIGITS, so older 4-digit PINs still work.
MIN_DIGITS, MAX_DIGITS = 6, 12
_SALT_BYTES = 16
#: A hash claiming more rounds than this is not one we wrote; refusing it keeps a bad file from
#: freezing the launcher for minutes.
_MAX_ITERATIONS = 10_000_000


def pin_problem(pin: str) -> str | None:
    """Why ``pin`` cannot be a carer PIN (plain words), or None when it can.

    Digits only: the tablet shows a number pad, and a carer says the PIN over the phone.
    """
    if not pin.isascii() or not pin.isdigit():
        return "The PIN may hold digits only (0-9)."
    if not MIN_DIGITS <= len(pin) <= MAX_DIGITS:
        return f"The PIN must be {MIN_DIGITS} to {MAX_DIGITS} digits long."
    return None


def is_outdated(pin_hash: str) -> bool:
    """True for a well-formed hash with fewer rounds than new ones get: make a new one with `klick carer pin`."""
    parts = pin_hash.strip().split("$") if isinstance(pin_hash, str) else []
    return len(parts) == 4 and parts[0] == SCHEME and parts[1].isdigit() and int(parts[1]) < ITERATIONS


def hash_pin(pin: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The ``carer.pin_hash`` value for ``pin``; a fresh random salt unless one is given."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations)
    return f"{SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, pin_hash: str) -> bool:
    """True when ``pin`` matches ``pin_hash``; False for a wrong PIN and for any malformed hash.

    An empty or broken hash never lets anyone in: a carer card without a working PIN stays locked.
    """
    if not isinstance(pin, str) or not isinstance(pin_hash, str):
        return False
    parts = pin_hash.strip().split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        return False
    _, rounds, salt_hex, hash_hex = parts
    if not rounds.isdigit() or not 1 <= int(rounds) <= _MAX_ITERATIONS:
        return False
    try:
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
    except ValueError:
        return False
    if not salt or len(expected) != hashlib.sha256().digest_size:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, int(rounds))
    return hmac.compare_digest(digest, expected)
