"""Writing a file so that a power cut leaves the old version or the new one, never half.

The pattern is the classic one: write a temporary file in the same folder, fsync it, rename it
over the target (atomic on POSIX), then fsync the folder so the rename itself is on disk.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic", "atomic_file", "written_path", "backup_path", "fsync_folder", "NotAPlainFile", "check_replaceable"]


class NotAPlainFile(OSError):
    """The target exists and is a device, a pipe, a socket or a folder: a rename would replace it."""


def check_replaceable(path: str | Path) -> None:
    """Raise :class:`NotAPlainFile` when ``path`` exists and is not a plain file.

    A rename replaces whatever has the name: as root, ``--out /dev/null`` would put a plain file
    where every program's /dev/null was. Links are followed: a link to a plain file is fine.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError:
        return  # cannot be looked at (a loop of links): writing it says why
    if not stat.S_ISREG(mode):
        raise NotAPlainFile(
            errno.EEXIST, "it is not a plain file (a device, a pipe or a folder); Klick replaces only plain files", str(path)
        )


def backup_path(path: str | Path) -> Path:
    """Where the previous version of ``path`` is kept: ``cards.yaml`` → ``cards.yaml.bak``, beside the file written."""
    p = written_path(path)
    return p.with_name(p.name + ".bak")


def written_path(path: str | Path) -> Path:
    """The file a write to ``path`` changes: a link is written through, so it stays a link.

    Replacing the link itself would leave a plain file in the link's folder, and paths the card
    file holds relative to the real folder would point nowhere.

    A link is followed only when it belongs to this user or to root, as the kernel's
    protected_symlinks rule does in shared folders: else a user who may write in the data folder
    (the launcher's, say) could plant ``cards.yaml -> /etc/shadow`` and have ``sudo klick cards
    unpack`` write there.
    """
    p = Path(path)
    real = os.path.realpath(p)
    if real == os.path.abspath(p):
        return p
    _check_link_owners(p)
    return Path(real)


def _check_link_owners(path: Path) -> None:
    me = os.geteuid()
    seen = 0
    while path.is_symlink() and seen < 40:
        owner = path.lstat().st_uid
        if owner not in (me, 0):
            raise NotAPlainFile(
                errno.EPERM,
                "it is a link made by another user; Klick writes through links only of its own user or root",
                str(path),
            )
        path = path.parent / os.readlink(path)
        seen += 1


def write_atomic(path: str | Path, data: bytes | str, *, backup: bool = False, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically; with ``backup``, keep the old file as ``.bak``.

    The backup is made by hard link (or copy where links are not possible) before the rename,
    so at every instant at least one complete version exists under a known name.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_file(path, backup=backup, mode=mode) as fh:
        try:
            fh.write(data)
        except OSError as exc:
            raise _naming(exc, Path(path)) from None


@contextmanager
def atomic_file(path: str | Path, *, backup: bool = False, mode: int | None = None) -> Iterator[BinaryIO]:
    """A new file to write that replaces ``path`` whole when the block ends, and not at all if it fails.

    What the block raises passes unchanged; errors of the file's own making name ``path``, never
    the hidden temporary file beside it. ``mode`` by default is the old file's, else 0644.
    """
    named = Path(path)
    target = written_path(named)
    check_replaceable(target)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _naming(exc, named) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                raise _naming(exc, named) from None
        try:
            if mode is not None:
                os.chmod(tmp_name, mode)
            elif target.exists():
                os.chmod(tmp_name, target.stat().st_mode & 0o777)
            else:
                os.chmod(tmp_name, 0o644)
            if backup and target.exists():
                _replace_backup(target)
            os.replace(tmp_name, target)
        except NotAPlainFile:
            raise
        except OSError as exc:
            raise _naming(exc, named, backup_path(target) if backup else None) from None
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_folder(folder)


def _naming(exc: OSError, target: Path, bak: Path | None = None) -> OSError:
    """The same error, about the file the caller named: never the hidden temporary file beside it."""
    said = str(exc.filename or "")
    if exc.errno is None or said in (str(target), str(bak)):
        return exc
    named = bak if bak is not None and said.startswith(str(bak)) else target
    return type(exc)(exc.errno, exc.strerror, str(named))


def _replace_backup(target: Path) -> None:
    bak = backup_path(target)
    tmp_bak = bak.with_name(bak.name + ".tmp")
    try:
        os.unlink(tmp_bak)
    except FileNotFoundError:
        pass
    try:
        try:
            os.link(target, tmp_bak)
        except OSError:
            tmp_bak.write_bytes(target.read_bytes())
        os.replace(tmp_bak, bak)
    except BaseException:
        try:
            os.unlink(tmp_bak)
        except OSError:
            pass
        raise


def fsync_folder(folder: Path) -> None:
    """Put a rename or a new name in ``folder`` on the disk too (best effort: not every file system can)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
