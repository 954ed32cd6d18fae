"""The carer window's pictures (cards.carer.pictures): a hostile picture folder never breaks it.

Real files on disk, a real worker thread, real Pillow: a damaged PNG, a valid PNG of 20000 x
20000 points, names in odd Unicode and undecodable bytes, a link that points to itself, a link
back up the tree, a named pipe dressed as a picture.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
import time
import unicodedata
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cards.carer.pictures import (
    MAX_ENTRIES,
    THUMB_PX,
    Thumbnailer,
    display_name,
    list_folder,
    make_thumb,
    pictures_folder,
)
from tests.conftest import REPO

ANNA = REPO / "config" / "demo" / "pictures" / "anna.png"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, side: int = 20000) -> None:
    """A valid 1-bit PNG of side x side points: 50 kB on disk, 400 million pixels when opened."""
    row = b"\x00" + bytes((side + 7) // 8)
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))


@pytest.fixture
def hostile(tmp_path) -> Path:
    folder = tmp_path / "Bilder"
    folder.mkdir()
    shutil.copy(ANNA, folder / "anna.png")
    shutil.copy(ANNA, folder / "ÅSA.PNG")
    (folder / "trasig.png").write_bytes(ANNA.read_bytes()[:300])  # cut off: a damaged PNG
    (folder / "inte-en-bild.jpg").write_text("hello")
    huge_png(folder / "jättestor.png")
    shutil.copy(ANNA, os.fsdecode(bytes(folder) + b"/\xff\xfe-bytes.png"))  # not UTF-8
    shutil.copy(ANNA, folder / "\u202egnp.exe.png")  # a right-to-left override
    shutil.copy(ANNA, folder / "rad\nbrytning.png")
    shutil.copy(ANNA, folder / ("l" * 240 + ".png"))
    os.symlink("loop.png", folder / "loop.png")  # points to itself
    os.symlink("..", folder / "upp")  # a folder that contains this one
    os.mkfifo(folder / "rör.png")  # reading it would never end
    (folder / "Semester").mkdir()
    (folder / ".dold.png").write_bytes(ANNA.read_bytes())
    return folder


def test_a_hostile_folder_lists_what_can_be_shown_and_skips_the_rest(hostile):
    listing = list_folder(hostile)
    assert listing.problem is None
    names = [e.name for e in listing.pictures]
    assert [e.name for e in listing.folders] == ["Semester", "upp"]
    assert "anna.png" in names and "ÅSA.PNG" in names and "trasig.png" in names and "jättestor.png" in names
    assert "loop.png" not in names and "rör.png" not in names and ".dold.png" not in names
    for name in names:
        name.encode("utf-8")  # every name can be drawn
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name), name
        assert len(name) <= 60
    assert "�-bytes.png" in [n.replace("��", "�") for n in names]
    assert list_folder(hostile, folders_only=True).pictures == ()


def test_a_folder_that_cannot_be_read_says_why(tmp_path):
    listing = list_folder(tmp_path / "finns-inte")
    assert listing.problem and listing.folders == () and listing.pictures == ()
    (tmp_path / "fil").write_text("x")
    assert list_folder(tmp_path / "fil").problem


def test_a_huge_folder_is_listed_only_up_to_its_limit(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(MAX_ENTRIES + 25):
        (folder / f"{n:05}.png").touch()
    listing = list_folder(folder)
    assert len(listing.pictures) == MAX_ENTRIES and listing.left_out == 25


def test_thumbnails_of_hostile_files_are_made_or_refused_never_raised(hostile, tmp_path):
    cache = tmp_path / "cache"
    good = make_thumb(hostile / "anna.png", cache)
    assert good.problem is None and max(good.size) <= THUMB_PX and len(good.rgba) == good.size[0] * good.size[1] * 4
    assert make_thumb(hostile / "trasig.png", cache).problem == "unreadable"
    assert make_thumb(hostile / "inte-en-bild.jpg", cache).problem == "unreadable"
    huge = make_thumb(hostile / "jättestor.png", cache)
    assert huge.problem == "too_big" and huge.rgba == b""
    assert make_thumb(hostile / "loop.png", cache).problem == "unreadable"
    assert make_thumb(hostile / "rör.png", cache).problem == "unreadable"  # would block forever if opened
    assert make_thumb(hostile / "finns-inte.png", cache).problem == "unreadable"
    odd = [p for p in hostile.iterdir() if p.name.startswith("\udcff")]
    assert make_thumb(odd[0], cache).problem is None


def test_a_thumbnail_comes_from_the_cache_until_the_picture_changes(tmp_path):
    picture = tmp_path / "anna.png"
    shutil.copy(ANNA, picture)
    cache = tmp_path / "cache"
    first = make_thumb(picture, cache)
    stored = list(cache.iterdir())
    assert len(stored) == 1 and first.full_size == (256, 256) or first.full_size[0] > 0
    again = make_thumb(picture, cache)
    assert again.rgba == first.rgba and again.full_size == first.full_size
    assert list(cache.iterdir()) == stored  # nothing new made
    stored[0].write_bytes(b"garbage")  # a damaged cache entry is made again
    assert make_thumb(picture, cache).rgba == first.rgba
    from PIL import Image

    Image.new("RGB", (40, 20), "red").save(picture)
    os.utime(picture, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    changed = make_thumb(picture, cache)
    assert changed.size == (40, 20) and len(list(cache.iterdir())) == 2


def test_an_unwritable_cache_only_means_no_cache(tmp_path):
    (tmp_path / "cache").write_text("a file where the folder should be")
    thumb = make_thumb(ANNA, tmp_path / "cache" / "sub")
    assert thumb.problem is None and thumb.rgba


def test_the_worker_delivers_every_thumbnail_newest_request_first(hostile, tmp_path):
    got: list = []
    done = threading.Event()
    paths = sorted(p for p in hostile.iterdir() if p.suffix.lower() == ".png")

    def deliver(thumb):
        got.append(thumb)
        if len(got) == len(paths):
            done.set()

    worker = Thumbnailer(deliver, tmp_path / "cache")
    try:
        for path in paths:
            worker.request(path)
        assert done.wait(60), f"only {len(got)} of {len(paths)} delivered"
    finally:
        worker.stop()
    assert {t.path for t in got} == set(paths)
    problems = {t.path.name: t.problem for t in got}
    assert problems["anna.png"] is None and problems["jättestor.png"] == "too_big" and problems["trasig.png"] == "unreadable"


def test_a_worker_keeps_only_its_newest_requests(tmp_path):
    release = threading.Event()
    got: list = []

    def deliver(thumb):
        release.wait(10)
        got.append(thumb.path)

    worker = Thumbnailer(deliver, None, backlog=3)
    try:
        worker.request(tmp_path / "first.png")
        time.sleep(0.2)  # the worker is now held in deliver()
        for n in range(10):
            worker.request(tmp_path / f"{n}.png")
        release.set()
        deadline = time.monotonic() + 10
        while len(got) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert got == [tmp_path / "first.png", tmp_path / "9.png", tmp_path / "8.png", tmp_path / "7.png"]


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_any_name_becomes_plain_drawable_text(name):
    shown = display_name(name)
    shown.encode("utf-8")
    assert 1 <= len(shown) <= 60
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in shown)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=200).filter(lambda b: b"/" not in b and b"\0" not in b))
def test_any_bytes_a_file_name_can_hold_become_plain_text(raw):
    shown = display_name(os.fsdecode(raw))
    shown.encode("utf-8")
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in shown)


def test_the_picture_folder_is_xdgs_then_pictures_then_bilder(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    assert pictures_folder(home) == home
    (home / "Bilder").mkdir()
    assert pictures_folder(home) == home / "Bilder"
    (home / "Pictures").mkdir()
    assert pictures_folder(home) == home / "Pictures"
    (home / "Foton").mkdir()
    (home / ".config").mkdir()
    (home / ".config" / "user-dirs.dirs").write_text('XDG_PICTURES_DIR="$HOME/Foton"\n')
    os.chmod(home / ".config" / "user-dirs.dirs", 0o600)
    assert pictures_folder(home) == home / "Foton"
