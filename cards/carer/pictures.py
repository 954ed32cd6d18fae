"""Pictures for the carer's window: where they are, what a folder holds, and small copies to show.

The picture chooser shows a folder as large thumbnails; card faces show their picture the same
way. A carer's picture folder holds whatever a phone or a relative put there: a picture that
will not open, a scan of 20000 x 20000 points, a name in odd Unicode, a link that points to
itself. None of them may stop the window, and none is opened on the window's thread: thumbnails
are made by a worker thread, kept on disk by the file's name, size and time, and handed back
as plain bytes. No Kivy here: the window turns the bytes into textures.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cards.pictures import PictureTooLarge, open_picture

__all__ = [
    "PICTURE_SUFFIXES",
    "THUMB_PX",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "Entry",
    "Listing",
    "Thumb",
    "Thumbnailer",
    "pictures_folder",
    "list_folder",
    "display_name",
    "make_thumb",
]

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: A thumbnail's longer side, in pixels.
THUMB_PX = 224
#: Pictures larger than this (or than cards.pictures.MAX_PICTURE_PIXELS) are not opened.
MAX_BYTES = 100 * 1024 * 1024
#: A folder lists at most this many entries; the rest are counted, not shown.
MAX_ENTRIES = 5000
_NAME_CHARS = 60


def pictures_folder(home: Path | None = None) -> Path:
    """The user's picture folder: XDG's (``xdg-user-dir PICTURES``), else ~/Pictures, ~/Bilder, ~."""
    home = home if home is not None else Path.home()
    candidates: list[Path] = []
    try:
        import platformdirs

        xdg = Path(platformdirs.user_pictures_dir())
        if xdg != home:  # XDG says the home folder itself when no picture folder is set
            candidates.append(xdg)
    except Exception:  # a broken user-dirs.dirs must not stop the chooser
        pass
    candidates += [home / "Pictures", home / "Bilder"]
    for folder in candidates:
        try:
            if folder.is_dir():
                return folder
        except OSError:
            continue
    return home


@dataclass(frozen=True)
class Entry:
    """A folder or a picture in a listing: its path (as the system has it) and a name fit to show."""

    path: Path
    name: str
    is_folder: bool


@dataclass(frozen=True)
class Listing:
    folder: Path
    folders: tuple[Entry, ...]
    pictures: tuple[Entry, ...]
    #: Entries not listed (past MAX_ENTRIES).
    left_out: int = 0
    #: Why the folder could not be read (None: it could).
    problem: str | None = None


def display_name(name: str, limit: int = _NAME_CHARS) -> str:
    """A file name as plain text: undecodable bytes as �, no control or direction characters, not too long."""
    text = os.fsencode(name).decode("utf-8", "replace") if any("\udc80" <= c <= "\udcff" for c in name) else name
    text = "".join("�" if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") else c for c in text)
    text = " ".join(text.split()) or "�"
    if len(text) > limit:
        keep = limit - 1
        text = text[: keep - keep // 3] + "…" + text[-(keep // 3) :]
    return text


def _sort_key(entry: Entry) -> tuple[str, str]:
    return (entry.name.casefold(), entry.name)


def list_folder(folder: Path, *, folders_only: bool = False) -> Listing:
    """The folders and pictures in ``folder``, each sorted by name; hidden ones left out.

    A folder that cannot be read gives a listing with ``problem`` set (the system's words), never
    an exception. Links are followed one step (a link to a picture elsewhere is a picture); a
    link that loops is left out, since it is neither.
    """
    folders: list[Entry] = []
    pictures: list[Entry] = []
    left_out = 0
    try:
        with os.scandir(folder) as it:
            for item in it:
                if item.name.startswith("."):
                    continue
                if len(folders) + len(pictures) >= MAX_ENTRIES:
                    left_out += 1
                    continue
                try:
                    is_dir = item.is_dir()
                    is_file = not is_dir and item.is_file()
                except OSError:
                    continue
                if is_dir:
                    folders.append(Entry(Path(item.path), display_name(item.name), True))
                elif is_file and not folders_only and item.name.lower().endswith(PICTURE_SUFFIXES):
                    pictures.append(Entry(Path(item.path), display_name(item.name), False))
    except OSError as exc:
        return Listing(folder, (), (), 0, exc.strerror or str(exc))
    return Listing(folder, tuple(sorted(folders, key=_sort_key)), tuple(sorted(pictures, key=_sort_key)), left_out)


# --- thumbnails -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thumb:
    """A small copy of a picture, as RGBA bytes, top row first; or why there is none.

    ``problem``: ``"unreadable"`` (not a picture, damaged, gone), ``"too_big"`` (more than
    MAX_PICTURE_PIXELS or MAX_BYTES), or None. ``full_size`` is the picture's own size when known.
    """

    path: Path
    size: tuple[int, int] = (0, 0)
    rgba: bytes = b""
    problem: str | None = None
    full_size: tuple[int, int] = (0, 0)


def _cache_name(path: Path, st: os.stat_result, px: int) -> str:
    key = f"{os.fsencode(str(path))!r}|{st.st_size}|{st.st_mtime_ns}|{px}"
    return hashlib.sha256(key.encode()).hexdigest()[:32] + ".png"


def make_thumb(path: Path, cache: Path | None = None, px: int = THUMB_PX) -> Thumb:
    """The thumbnail of ``path`` (from ``cache`` if it was made before). Never raises for a bad file."""
    from PIL import Image, ImageOps

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return Thumb(path, problem="unreadable")
    if not stat.S_ISREG(st.st_mode):
        return Thumb(path, problem="unreadable")  # a pipe or a device would never end
    if st.st_size > MAX_BYTES:
        return Thumb(path, problem="too_big")
    cached = cache / _cache_name(path, st, px) if cache is not None else None
    if cached is not None:
        try:
            with Image.open(cached) as im:
                width, height = (int(v) for v in str(im.info.get("klick-size", "0x0")).split("x"))
                rgba = im.convert("RGBA")
                return Thumb(path, rgba.size, rgba.tobytes(), None, (width, height))
        except (OSError, ValueError, SyntaxError):
            pass  # no thumbnail yet, or a damaged one: make it again
    try:
        with open_picture(path) as im:
            full = im.size
            if max(full) > 30_000:
                return Thumb(path, problem="too_big", full_size=full)
            im.draft("RGB", (px, px))  # JPEG decodes at a fraction of its size: much faster
            upright = ImageOps.exif_transpose(im)
            upright.thumbnail((px, px))
            rgba = upright.convert("RGBA")
    except PictureTooLarge as exc:
        return Thumb(path, problem="too_big", full_size=exc.size)
    except Image.DecompressionBombError:
        return Thumb(path, problem="too_big")
    except Exception:  # Pillow raises many kinds for a damaged file; every one means "cannot show it"
        return Thumb(path, problem="unreadable")
    if cached is not None:
        _store(rgba, cached, full)
    return Thumb(path, rgba.size, rgba.tobytes(), None, full)


def _store(image, target: Path, full: tuple[int, int]) -> None:
    """Keep a thumbnail on disk; a cache that cannot be written only means it is made again."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("klick-size", f"{full[0]}x{full[1]}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(tmp, "PNG", pnginfo=info)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


class Thumbnailer:
    """One worker thread making thumbnails; the newest request first (what is on screen now).

    ``deliver(thumb)`` is called on the worker thread: the window hands it to its own thread.
    At most ``backlog`` requests wait; older ones are dropped (they were scrolled past) and are
    asked for again if they come back into view.
    """

    def __init__(self, deliver: Callable[[Thumb], None], cache: Path | None, *, backlog: int = 400) -> None:
        self.deliver = deliver
        self.cache = cache
        self.backlog = backlog
        self._stack: list[Path] = []
        self._queued: set[Path] = set()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="klick-thumbnails", daemon=True)
        self._thread.start()

    def request(self, path: Path) -> None:
        with self._wake:
            if path in self._queued:
                self._stack.remove(path)
            self._stack.append(path)
            self._queued.add(path)
            while len(self._stack) > self.backlog:
                self._queued.discard(self._stack.pop(0))
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stack and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                path = self._stack.pop()
                self._queued.discard(path)
            try:
                thumb = make_thumb(path, self.cache)
            except Exception:  # make_thumb should not raise; if it ever does, this picture has none
                thumb = Thumb(path, problem="unreadable")
            try:
                self.deliver(thumb)
            except Exception:
                pass
