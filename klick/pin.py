"""The carer PIN: stored only as a salted, slow hash, so klick.yaml can be read by anyone safely.

A tablet's settings file is copied around on USB sticks and shown by ``klick config show``; the
PIN itself must never be in it. PBKDF2-SHA256 from the standard library is enough for a short
PIN guarded by a physical carer card, and needs no extra package on the appliance.

Format: ``pbkdf2_sha256$ITERATIONS$SALT_HEX$HASH_HEX``.
"""

from __future__ import annotations

import hashlib
import hmac
import os

__all__ = ["hash_pin", "check_pin", "pin_problem", "ITERATIONS", "MIN_DIGITS", "MAX_DIGITS"]

#: Slow enough to make guessing every 4-digit PIN from a stolen file take a while, fast enough
#: (a fraction of a second on a tablet) that a carer does not wait.
ITERATIONS = 200_000
SCHEME = "pbkdf2_sha256"
MIN_DIGITS, MAX_DIGITS = 4, 12
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
