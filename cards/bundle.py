"""Card bundles: a whole card set in one file, so a carer can carry it to the tablet on a USB stick.

A bundle (``mamma.klick``) is a zip holding ``cards.yaml``, ``pictures/`` and ``albums/``, with
every path in the card file relative to the bundle. It may come from anywhere, so unpacking
trusts nothing: every name, size and file type is checked, and the card file is checked exactly
as ``klick cards check`` would, *before* anything beside the registry changes. A bundle that
fails any check changes nothing at all.

A card set that is well formed may still hold what this tablet does not take: command cards, or
video calls to a server the installer did not list (:func:`cards.policy.policy_problems`). Such
a bundle is refused too, naming each card, unless the installer accepts them knowingly.

Unpacked files land in a new folder ``card-sets/<bundle>-<time>/`` beside the registry, and only
then is ``cards.yaml`` replaced, atomically, keeping the old one as ``cards.yaml.bak``. So at
every instant ``cards.yaml`` names a complete set of pictures, and the previous set (its card
file and its pictures) stays usable as the backup. Older unpacked folders that neither file
names any more are removed. The new folder and the card file get the owner and group of the
folder the card file lives in (an installer often unpacks with sudo; the launcher runs as its
own user and must read the pictures).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
import unicodedata
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cards.model import Card, Command, PhotoAlbum
from cards.pictures import PictureTooLarge, open_picture
from cards.policy import policy_problems
from cards.registry import (
    LOCK_WAIT_S,
    CardSetBusy,
    Registry,
    RegistryError,
    card_set_lock,
    check_registry,
    parse_registry_text,
    real_path,
    registry_to_yaml,
    save_registry,
)
from klick.atomic import atomic_file, backup_path
from klick.fields import hidden_character
from klick.problems import Problem
from klick.yamlfile import MAX_FILE_BYTES, size_problem

__all__ = [
    "BundleError",
    "NoRoom",
    "NotAllowedHere",
    "PackResult",
    "UnpackResult",
    "Entry",
    "pack_bundle",
    "unpack_bundle",
    "check_entries",
    "MAX_TOTAL_BYTES",
    "MAX_FILES",
    "CARD_FILE",
    "SETS_DIR",
]

#: The most a bundle may unpack to: a few hundred photos, not a disk image.
MAX_TOTAL_BYTES = 100 * 1024 * 1024
MAX_FILES = 2000
MAX_NAME_BYTES = 255
MAX_PATH_CHARS = 400
CARD_FILE = "cards.yaml"
TOP_FOLDERS = ("pictures", "albums")
SETS_DIR = "card-sets"
#: How the folder an unpack is writing into starts; one left behind was an unpack that was killed.
INCOMING = ".incoming-"
#: What an unpack leaves free on the disk, for the usage log and the rest of the tablet.
SPARE_BYTES = 10 * 1024 * 1024
_CHUNK = 256 * 1024
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


class BundleError(Exception):
    """The bundle cannot be made or used; ``problems`` lists each reason."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()):
        super().__init__(message)
        self.problems = list(problems)


class NoRoom(BundleError):
    """The tablet's disk has no room for the bundle: the tablet's trouble, not the bundle's."""


class NotAllowedHere(BundleError):
    """The bundle is sound, but cards in it do what this tablet does not allow (a command, a call
    to a server not listed): an installer who trusts the sender may accept them knowingly."""


@dataclass(frozen=True)
class PackResult:
    path: Path
    cards: int
    files: int
    bytes: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnpackResult:
    registry: Path
    cards: int
    files: int
    folder: Path
    backup: Path | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """What the zip's directory says about one member, before a byte of it is read."""

    name: str
    size: int
    mode: int = 0
    encrypted: bool = False

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") or stat.S_ISDIR(self.mode)


# --- the pure part: is this list of names and sizes a card set? ------------------------------


def check_entries(entries: Sequence[Entry], max_total: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES) -> list[str]:
    """Every reason the zip's directory is refused, in plain words; empty means it may be read."""
    reasons: list[str] = []
    if len(entries) > max_files:
        reasons.append(f"it holds {len(entries)} files; a card set may hold at most {max_files}")
        return reasons
    seen: dict[str, str] = {}
    files: set[str] = set()
    total = 0
    has_cards = False
    for entry in entries:
        reason = _name_problem(entry.name)
        if reason is None:
            reason = _type_problem(entry)
        if reason is None and not _in_layout(entry):
            reason = (
                f'"{entry.name}" is not part of a card set (a bundle holds only {CARD_FILE}, '
                f"{TOP_FOLDERS[0]}/ and {TOP_FOLDERS[1]}/)"
            )
        if reason is None:
            key = unicodedata.normalize("NFC", entry.name.rstrip("/")).casefold()
            if key in seen:
                reason = f'"{entry.name}" is in the bundle twice (also as "{seen[key]}")'
            seen[key] = entry.name
        if reason is not None:
            reasons.append(reason)
            continue
        if entry.name == CARD_FILE:
            has_cards = True
            too_big = size_problem(entry.size, "card file", MAX_FILE_BYTES)
            if too_big:
                reasons.append(f"its {CARD_FILE}: {too_big}")
        if not entry.is_dir:
            files.add(unicodedata.normalize("NFC", entry.name).casefold())
        total += max(0, entry.size)
    for name in sorted(files):
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                reasons.append(f'"{"/".join(parts[:i])}" is both a file and a folder in the bundle')
                break
    if total > max_total:
        reasons.append(f"it would unpack to {_mb(total)}; a card set may be at most {_mb(max_total)}")
    if not has_cards and not reasons:
        reasons.append(f"it has no {CARD_FILE}, so it is not a Klick card bundle")
    return reasons


def _name_problem(name: str) -> str | None:
    if not name or "\x00" in name:
        return "a file in it has an empty or broken name"
    if "\\" in name:
        return f"\"{name}\" uses a backslash in its name; a bundle uses only '/' between folders"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f'"{name}" is an absolute path; everything in a bundle must stay inside it'
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        return f"\"{name}\" points outside the bundle ('..'); everything in a bundle must stay inside it"
    if any(p in ("", ".") for p in parts):
        return f"\"{name}\" has an empty or '.' part in its path"
    if len(name) > MAX_PATH_CHARS or any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in parts):
        return f'"{name[:60]}…" has a name too long for the tablet\'s disk'
    if hidden_character(name):
        return f"{ascii(name)} has a hidden or control character in its name"
    return None


def _type_problem(entry: Entry) -> str | None:
    kind = stat.S_IFMT(entry.mode)
    if kind == stat.S_IFDIR and not entry.name.endswith("/"):
        # A folder's name ends in '/': unzipping writes this one as a file, with the folder's
        # contents then needing it to be a folder.
        return f"\"{entry.name}\" is marked as a folder but named like a file (no '/' at the end)"
    if kind == stat.S_IFLNK:
        return f'"{entry.name}" is a symbolic link; a bundle may hold only plain files'
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f'"{entry.name}" is a special file (not a plain file); a bundle may hold only plain files'
    if entry.encrypted:
        return f'"{entry.name}" is encrypted; a bundle must not be password-protected'
    if entry.size < 0:
        return f'"{entry.name}" has a broken size'
    return None


def _in_layout(entry: Entry) -> bool:
    parts = entry.name.rstrip("/").split("/")
    if parts == [CARD_FILE]:
        return not entry.is_dir
    return parts[0] in TOP_FOLDERS and (len(parts) >= 2 or entry.is_dir)


def _entry(info: zipfile.ZipInfo) -> Entry:
    return Entry(info.filename, info.file_size, (info.external_attr >> 16) & 0xFFFF, bool(info.flag_bits & 0x1))


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


# --- pictures ----------------------------------------------------------------------------------


def _image_problem(path: Path) -> str | None:
    """Why ``path`` is not a picture Klick can show, or None when it is one."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_picture(path) as im:
                im.verify()
    except PictureTooLarge as exc:
        return f"is {exc.size[0]} x {exc.size[1]} pixels, far too large for a card picture"
    except Exception:  # PIL raises many kinds for a file that is not an image; all mean "not a picture"
        return "is not a picture Klick can show (PNG, JPEG, GIF, WebP or BMP)"
    return None


# --- packing -----------------------------------------------------------------------------------


def pack_bundle(registry: Registry, registry_path: str | Path, out: str | Path) -> PackResult:
    """Write ``registry`` with its pictures and photo albums to the bundle ``out``, atomically.

    Pictures go to ``pictures/``, album folders to ``albums/<name>/`` (images only); names are
    made unique, and the card file in the bundle names them relative to the bundle. A picture
    that is missing or not an image is left out with a note, so the bundle always unpacks.
    """
    notes: list[str] = []
    files: list[tuple[str, Path]] = []
    dirs: list[str] = []
    taken: set[str] = set()
    by_source: dict[Path, str] = {}

    def unique(folder: str, name: str) -> str:
        stem, suffix = os.path.splitext(name)
        candidate, n = f"{folder}/{name}", 2
        while candidate.casefold() in taken:
            candidate, n = f"{folder}/{stem}-{n}{suffix}", n + 1
        taken.add(candidate.casefold())
        return candidate

    with tempfile.TemporaryDirectory(prefix="klick-pack-") as virtual:
        base = Path(virtual).resolve()
        cards: list[Card] = []
        for card in registry.cards:
            picture = None
            if card.picture is not None:
                src = real_path(card.picture)
                if src in by_source:
                    picture = base / by_source[src]
                elif not _is_file(src):
                    notes.append(f'The picture {card.picture} of card "{card.label}" does not exist; it is left out.')
                elif (why := _image_problem(src)) is not None:
                    notes.append(f'The picture {card.picture} of card "{card.label}" {why}; it is left out.')
                else:
                    arc = unique("pictures", src.name)
                    by_source[src] = arc
                    files.append((arc, src))
                    picture = base / arc
            action = card.action
            if isinstance(action, PhotoAlbum) and action.folder is not None:
                src = real_path(action.folder)
                if src not in by_source:
                    arc_dir = unique("albums", src.name or "album")
                    by_source[src] = arc_dir
                    dirs.append(arc_dir + "/")
                    skipped = 0
                    if src.is_dir():
                        for path in sorted(p for p in src.rglob("*") if p.is_file()):
                            rel = path.relative_to(src)
                            if any(part.startswith(".") for part in rel.parts) or _image_problem(path):
                                skipped += 1
                                continue
                            files.append((f"{arc_dir}/{rel.as_posix()}", path))
                    if skipped:
                        notes.append(
                            f"{skipped} file{'s' if skipped != 1 else ''} in {action.folder} "
                            f"{'are' if skipped != 1 else 'is'} not a picture and left out."
                        )
                action = replace(action, folder=base / by_source[src])
            cards.append(replace(card, picture=picture, action=action))
        text = registry_to_yaml(Registry(tuple(cards)), base)

    total = len(text.encode("utf-8")) + sum(src.stat().st_size for _, src in files)
    if total > MAX_TOTAL_BYTES:
        raise BundleError(
            f"The card set with its pictures is {_mb(total)}; a bundle may be at most "
            f"{_mb(MAX_TOTAL_BYTES)}. Use fewer or smaller photos in the albums."
        )
    if len(files) + len(dirs) + 1 > MAX_FILES:
        raise BundleError(f"The card set has {len(files)} pictures; a bundle may hold at most {MAX_FILES - 1}.")
    _write_zip(Path(out), text, dirs, files)
    return PackResult(Path(out), len(cards), len(files), Path(out).stat().st_size, tuple(notes))


def _write_zip(out: Path, text: str, dirs: list[str], files: list[tuple[str, Path]]) -> None:
    with atomic_file(out, mode=0o644) as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            info = zipfile.ZipInfo(CARD_FILE, _FIXED_TIME)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, text.encode("utf-8"), compress_type=zipfile.ZIP_DEFLATED)
            for name in dirs:
                info = zipfile.ZipInfo(name, _FIXED_TIME)
                info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10
                zf.writestr(info, b"")
            for arc, src in files:
                info = zipfile.ZipInfo(arc, _FIXED_TIME)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.compress_type = zipfile.ZIP_STORED  # pictures are compressed already
                with open(src, "rb") as source, zf.open(info, "w") as dest:
                    shutil.copyfileobj(source, dest, _CHUNK)


# --- unpacking ---------------------------------------------------------------------------------


def unpack_bundle(
    bundle: str | Path,
    registry_path: str | Path,
    *,
    allowed_servers: Iterable[str] = (),
    allow_commands: bool = False,
    check_policy: bool = True,
    lock_wait: float = LOCK_WAIT_S,
) -> UnpackResult:
    """Check the bundle completely, then make it the card set at ``registry_path``.

    Raises :class:`BundleError` (and changes nothing) for anything wrong with the bundle, and
    for command cards (unless ``allow_commands``) and calls to a server not in
    ``allowed_servers``. ``check_policy=False`` is for the carer's own desktop copy, never a tablet.
    Another unpack into the same folder is waited for, up to ``lock_wait`` seconds.
    """
    bundle = Path(bundle)
    registry_path = Path(registry_path)
    label = bundle.name
    try:
        size = bundle.stat().st_size
    except OSError as exc:
        raise BundleError(f"The bundle {label} cannot be read: {exc.strerror or exc}.") from None
    if size > MAX_TOTAL_BYTES + 16 * 1024 * 1024:
        raise _refuse(label, [f"the file is {_mb(size)}; a card set may be at most {_mb(MAX_TOTAL_BYTES)}"])
    if not zipfile.is_zipfile(bundle):
        raise _refuse(label, ["it is not a zip file (a bundle is made with `klick cards pack`)"])

    target_dir = registry_path.resolve().parent
    created: list[Path] = []
    staging: Path | None = None
    with contextlib.ExitStack() as held:
        try:
            with zipfile.ZipFile(bundle) as zf:
                infos = zf.infolist()
                reasons = check_entries([_entry(i) for i in infos])
                if reasons:
                    raise _refuse(label, reasons)
                declared = sum(i.file_size for i in infos)
                sets = target_dir / SETS_DIR
                for folder in reversed([sets, *sets.parents]):
                    if not folder.exists():
                        folder.mkdir()
                        created.append(folder)
                # From here to the last clean-up, no other unpack: each would remove the other's set.
                held.enter_context(card_set_lock(target_dir, lock_wait))
                _remove_leftovers(sets)
                _check_room(target_dir, declared, label)
                staging = Path(tempfile.mkdtemp(prefix=INCOMING, dir=sets))
                n_files = _extract(zf, infos, staging, label)
            registry, notes = _check_unpacked(staging, label)
            if check_policy:
                refused = policy_problems(registry, allowed_servers, allow_commands, file=f"{CARD_FILE} in {label}")
                if refused:
                    n = len(refused)
                    raise NotAllowedHere(
                        f"The bundle {label} was refused: {n} card{'s' if n != 1 else ''} in it "
                        f"{'do' if n != 1 else 'does'} what this tablet does not allow (above).",
                        refused,
                    )
            owner = _hand_over(staging, target_dir, [f for f in created if f == sets])
            final = _land(staging, sets, bundle)
            staging = None
            try:
                checked, problems = parse_registry_text((final / CARD_FILE).read_text("utf-8"), final)
                assert checked is not None, problems  # checked above, in the same files
                had_old = registry_path.exists()
                save_registry(checked, registry_path)
                _chown(registry_path, owner)
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
            created.clear()
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OverflowError, ValueError) as exc:
            raise _refuse(label, [f"it is damaged ({exc}); make it again with `klick cards pack`"]) from None
        except RegistryError as exc:
            raise BundleError(f"The card set from {label} could not be saved.", exc.problems) from None
        except CardSetBusy as exc:
            raise BundleError(f"The bundle {label} was not unpacked: {exc}") from None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            for folder in reversed(created):
                try:
                    folder.rmdir()
                except OSError:
                    pass
        _prune(sets, registry_path, keep=final)
    backup = backup_path(registry_path) if had_old else None
    return UnpackResult(registry_path, len(registry.cards), n_files, final, backup, tuple(notes))


def _refuse(label: str, reasons: list[str]) -> BundleError:
    if len(reasons) == 1:
        return BundleError(f"The bundle {label} was refused: {reasons[0]}.")
    problems = [Problem(label, None, reason) for reason in reasons]
    return BundleError(f"The bundle {label} was refused for the {len(reasons)} reasons above.", problems)


def _check_room(target_dir: Path, declared: int, label: str) -> None:
    folder = target_dir
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if declared + SPARE_BYTES > free:
        raise NoRoom(
            f"The bundle {label} was not unpacked: it needs {_mb(declared)}, and {_mb(SPARE_BYTES)} must stay free "
            f"beside it for the usage log; the disk has only {_mb(free)} free."
        )


def _extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], staging: Path, label: str) -> int:
    """Copy each member into ``staging``, counting real bytes: a zip may lie about its sizes."""
    total = 0
    n_files = 0
    for info in infos:
        dest = staging.joinpath(*info.filename.rstrip("/").split("/"))
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with zf.open(info) as src, open(dest, "xb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                total += len(chunk)
                if written > info.file_size or total > MAX_TOTAL_BYTES:
                    raise _refuse(
                        label, [f'"{info.filename}" unpacks to more than the bundle says (a zip bomb, or a damaged file)']
                    )
                out.write(chunk)
        n_files += 1
    return n_files


def _check_unpacked(staging: Path, label: str) -> tuple[Registry, list[str]]:
    """The card file checked as `klick cards check` would, and every picture checked to be one."""
    where = f"{CARD_FILE} in {label}"
    raw = (staging / CARD_FILE).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _refuse(label, [f"its {CARD_FILE} is not UTF-8 text"]) from None
    registry, problems = parse_registry_text(text, staging, where)
    errors = [p for p in problems if p.severity == "error"]
    if registry is None or errors:
        raise BundleError(f"The bundle {label} was refused: its card file has problems.", errors or problems)
    if not registry.cards:
        # An empty or cut-off cards.yaml (a copy that failed, a disk that was full) parses as a card
        # set with no cards; unpacked (or pushed to a whole group), every card stops working.
        raise _refuse(
            label,
            [
                f"its {CARD_FILE} holds no cards (is it empty or cut off?); unpacking it would leave every card on the tablet unknown"
            ],
        )
    reasons: list[str] = []
    root = staging.resolve()
    for card in registry.cards:
        if card.picture is not None:
            reasons += _inside(root, card.picture, f'the picture of card "{card.label}"', want_dir=False)
        if isinstance(card.action, PhotoAlbum) and card.action.folder is not None:
            reasons += _inside(root, card.action.folder, f'the photo folder of card "{card.label}"', want_dir=True)
    for folder in TOP_FOLDERS:
        for path in sorted((staging / folder).rglob("*")) if (staging / folder).is_dir() else []:
            if path.is_file() and (why := _image_problem(path)) is not None:
                reasons.append(f"{path.relative_to(staging).as_posix()} {why}")
    if reasons:
        raise _refuse(label, reasons)
    notes = [
        f'Card "{card.label}" starts the program {card.action.argv[0]} on the tablet; make sure you know this bundle\'s sender.'
        for card in registry.cards
        if isinstance(card.action, Command)
    ]
    return registry, notes


def _inside(root: Path, path: Path, what: str, *, want_dir: bool) -> list[str]:
    resolved = real_path(path)
    try:
        rel = resolved.relative_to(root)
    except ValueError:
        return [f"{what} ({path}) is outside the bundle; a bundle must carry its own pictures"]
    exists = resolved.is_dir() if want_dir else _is_file(resolved)
    if not exists:
        return [f"{what} ({rel.as_posix()}) is not in the bundle"]
    if not want_dir and rel.parts[0] not in TOP_FOLDERS and (why := _image_problem(resolved)) is not None:
        return [f"{what} ({rel.as_posix()}) {why}"]  # pictures/ and albums/ are checked file by file below
    return []


def _hand_over(staging: Path, target_dir: Path, made: list[Path]) -> tuple[int, int] | None:
    """Make the unpacked tree (and any folder made for it) readable by the card folder's owner.

    As root, everything gets the owner and group of the folder the card file lives in, with
    modes 0750/0640. Otherwise the tree takes that folder's group when this user may give it,
    again 0750/0640, and else falls back to 0755/0644 so the launcher's user can read it all
    the same. Returns the (uid, gid) the card file should get too, or None to leave it.
    """
    info = target_dir.stat()
    owner = (info.st_uid, info.st_gid) if os.geteuid() == 0 else None
    paths = [*made, staging, *staging.rglob("*")]
    group_given = True
    for path in paths:
        try:
            if owner is not None:
                os.chown(path, *owner, follow_symlinks=False)
            elif path.stat().st_gid != info.st_gid:
                os.chown(path, -1, info.st_gid, follow_symlinks=False)
        except PermissionError:
            group_given = False
    private = owner is not None or group_given
    for path in paths:
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, 0o750 if private else 0o755)
        else:
            os.chmod(path, 0o640 if private else 0o644)
    return owner


def _chown(path: Path, owner: tuple[int, int] | None) -> None:
    if owner is None:
        return
    for p in (path, backup_path(path)):
        try:
            os.chown(p, *owner, follow_symlinks=False)
        except FileNotFoundError:
            pass


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the disk, a loop of links: not a file Klick can use
        return False


def _land(staging: Path, sets: Path, bundle: Path) -> Path:
    """Give the checked folder its final name; a rename, so it appears whole or not at all."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in bundle.stem)[:40] or "bundle"
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        final = sets / (base if n == 1 else f"{base}-{n}")
        if not final.exists():
            os.rename(staging, final)
            return final
    raise BundleError("Could not find a free folder name for the new card set.")


def _prune(sets: Path, registry_path: Path, keep: Path) -> None:
    """Remove unpacked sets that neither the card file nor its backup uses, and stale leftovers."""
    used = {keep.name}
    for path in (registry_path, backup_path(registry_path)):
        if not path.exists():
            continue
        try:
            registry, _ = check_registry(path)
        except OSError:
            return
        if registry is None:
            return  # cannot tell what the file uses: keep everything
        for card in registry.cards:
            for p in (card.picture, card.action.folder if isinstance(card.action, PhotoAlbum) else None):
                if p is None:
                    continue
                try:
                    used.add(real_path(p).relative_to(sets.resolve()).parts[0])
                except (ValueError, IndexError):
                    pass
    for folder in sets.iterdir():
        if folder.name in used or not folder.is_dir() or folder.is_symlink():
            continue
        shutil.rmtree(folder, ignore_errors=True)  # held by no one: unpacks run one at a time


def _remove_leftovers(sets: Path) -> None:
    """The folders of unpacks that were killed half-way (100 MB each, at most), before the room is measured."""
    for folder in sets.glob(INCOMING + "*"):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
