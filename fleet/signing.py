"""The municipality's signing key: Ed25519 (the ``cryptography`` package), one key pair per fleet.

The private key signs every push at the office and never leaves it: a PEM file (PKCS#8) that only
its owner may read, like an ssh key. Each tablet holds the public key, in klick.yaml as
``fleet.signing_key``: 32 bytes, written as 44 base64 characters, short enough to copy by hand.
A broker account that can write a tablet's ``set/...`` topics is not enough to change its cards:
only what this key signed is taken.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from klick.atomic import fsync_folder

__all__ = [
    "SigningKeyError",
    "new_key_pair",
    "write_private_key",
    "load_private_key",
    "public_text",
    "public_key_from_text",
    "sign",
    "verify",
]


class SigningKeyError(Exception):
    """A key cannot be made, read or used; one plain sentence saying what to do."""


def new_key_pair() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write the private key, readable by its owner alone (0600); never over an existing key.

    The key is written whole beside ``path`` and then hard-linked to its name: link(2) refuses a
    name that exists, even a link to somewhere else, so two keygens at once, or a file made
    between a check and a rename, can never replace a key that tablets already trust.
    """
    path = Path(path)
    exists = SigningKeyError(
        f"{path} exists already; a new key pair would lock every tablet out until each gets the new public key. "
        "Move the old file away first if that is what you want."
    )
    if os.path.lexists(path):
        raise exists
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # made 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise exists from None
    finally:
        os.unlink(tmp)
    fsync_folder(path.parent)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The office's private key; refused if others may read it (as ssh refuses a private key)."""
    path = Path(path)
    try:
        info = path.stat()
        if info.st_size > 64 * 1024:
            raise SigningKeyError(f"{path} is not a signing key made by `klick fleet keygen` (far too large).")
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"There is no office signing key at {path}; make one with `klick fleet keygen`.") from None
    except OSError as exc:
        raise SigningKeyError(f"The office signing key {path} cannot be read ({exc.strerror or exc}).") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"The office signing key {path} may be read by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"only its owner may read it: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{path} is not a signing key made by `klick fleet keygen`.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key, the kind `klick fleet keygen` makes.")
    return key


def public_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as the tablet's klick.yaml holds it: 44 base64 characters."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Raises ValueError with plain words for anything but a key :func:`public_text` wrote."""
    try:
        raw = binascii.a2b_base64(text.strip().encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("is not a public key: it must be the 44 characters `klick fleet keygen` printed") from None
    if len(raw) != 32:
        raise ValueError("is not a public key: it must be the 44 characters `klick fleet keygen` printed")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(key: Ed25519PrivateKey, statement: bytes) -> str:
    return base64.b64encode(key.sign(statement)).decode("ascii")


def verify(public: Ed25519PublicKey, statement: bytes, signature: str) -> bool:
    try:
        raw = binascii.a2b_base64(signature.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    if len(raw) != 64:
        return False
    try:
        public.verify(raw, statement)
    except InvalidSignature:
        return False
    return True
