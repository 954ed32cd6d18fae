"""``klick fleet enrol``: a tablet's broker user, its password, and the lines that set both up.

The broker's password file holds Mosquitto 2.0's own hash (``mosquitto_passwd`` writes the same:
``user:$7$<iterations>$<salt>$<PBKDF2-SHA512 hash>``, base64), so the office never needs
``mosquitto_passwd`` itself and the password is shown once, to be put on the tablet.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from fleet import wire

__all__ = ["new_password", "mosquitto_hash", "password_line", "enrol_text"]

#: Mosquitto 2.0's default for mosquitto_passwd.
ITERATIONS = 101


def new_password() -> str:
    """192 random bits, in letters a person can copy."""
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_line(user: str, password: str) -> str:
    return f"{user}:{mosquitto_hash(password)}"


def enrol_text(device: str, password: str, *, host: str, port: int) -> str:
    """What the installer copies: the tablet's settings, its password file, the broker's line."""
    problem = wire.check_device_name(device)
    if problem:
        raise ValueError(problem)
    return f"""\
# 1. On the tablet, in /etc/klick/klick.yaml (the device's name in the data is its broker user):
pilot:
  device_name: {device}
fleet:
  host: {host}
  port: {port}
  ca_file: fleet-ca.pem
  password_file: fleet-password

# 2. On the tablet, the file /etc/klick/fleet-password (owner root:klick, mode 0640), this one line:
{password}

# 3. On the tablet, /etc/klick/fleet-ca.pem: the broker's CA certificate (ca.crt).

# 4. On the broker, add this line to /etc/mosquitto/klick.passwd, then: sudo systemctl reload mosquitto
{password_line(device, password)}
"""
