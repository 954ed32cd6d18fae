"""Atomic writes through links: a linked card file stays a link, and the file it names is what changes."""

import os
import zipfile
from pathlib import Path

import pytest

from cards.bundle import pack_bundle
from cards.model import Card, Web
from cards.registry import Registry, load_registry, save_registry
from klick.atomic import NotAPlainFile, atomic_file, backup_path, write_atomic


def _linked_card_file(tmp_path: Path) -> tuple[Path, Path]:
    """The card set lives in data/; settings/cards.yaml is a link to it (an installer's layout)."""
    data = tmp_path / "data"
    (data / "pics").mkdir(parents=True)
    (data / "pics" / "anna.png").write_bytes(b"png")
    real = data / "cards.yaml"
    save_registry(Registry((Card("04A1", "Anna", Web("https://a.se"), picture=data / "pics" / "anna.png"),)), real)
    (tmp_path / "settings").mkdir()
    link = tmp_path / "settings" / "cards.yaml"
    link.symlink_to(os.path.relpath(real, link.parent))
    return link, real


def test_a_linked_card_file_stays_a_link_and_its_pictures_still_show(tmp_path):
    link, real = _linked_card_file(tmp_path)
    old = real.read_text()
    registry = load_registry(link)
    save_registry(registry.with_card(Card("04A2", "Bo", Web("https://b.se"))), link)
    assert link.is_symlink() and link.resolve() == real
    assert [c.uid for c in load_registry(real).cards] == ["04A1", "04A2"]
    assert load_registry(link).get("04A1").picture.is_file()
    assert backup_path(link) == real.with_name("cards.yaml.bak") and backup_path(link).read_text() == old
    assert sorted(p.name for p in link.parent.iterdir()) == ["cards.yaml"]


def test_write_atomic_through_a_link_to_a_file_not_made_yet_makes_that_file(tmp_path):
    link = tmp_path / "klick.yaml"
    link.symlink_to(tmp_path / "elsewhere.yaml")
    write_atomic(link, "a: 1\n")
    assert link.is_symlink() and (tmp_path / "elsewhere.yaml").read_text() == "a: 1\n"


def test_a_link_to_a_folder_or_a_device_is_still_refused(tmp_path):
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    with pytest.raises(NotAPlainFile):
        write_atomic(link, "x")
    assert link.is_symlink()


def test_a_bundle_packed_onto_a_link_is_written_through_it(tmp_path):
    link, real = _linked_card_file(tmp_path)
    out_real = tmp_path / "data" / "set.klick"
    out_real.write_bytes(b"old")
    out = tmp_path / "settings" / "set.klick"
    out.symlink_to(out_real)
    pack_bundle(load_registry(link), link, out)
    assert out.is_symlink() and zipfile.is_zipfile(out_real)


def test_a_failed_atomic_file_leaves_the_old_file_and_no_leftovers(tmp_path):
    path = tmp_path / "set.klick"
    path.write_bytes(b"old")
    with pytest.raises(FileNotFoundError) as caught, atomic_file(path) as fh:
        fh.write(b"half")
        open(tmp_path / "missing-picture.png", "rb")  # noqa: SIM115 - the caller's own error passes unchanged
    assert caught.value.filename == str(tmp_path / "missing-picture.png")
    assert path.read_bytes() == b"old" and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() != 0, reason="making a link owned by another user needs root")
def test_as_root_a_link_another_user_planted_is_not_written_through(tmp_path):
    """The launcher's user may write in the data folder: a cards.yaml -> /etc/... it planted must
    not make `sudo klick cards unpack` (or any root write) replace the file it names."""
    victim = tmp_path / "etc-shadow"
    victim.write_text("root:secret\n")
    os.chmod(tmp_path, 0o755)
    link = tmp_path / "cards.yaml"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)  # nobody's link
    with pytest.raises(NotAPlainFile, match="link made by another user"):
        write_atomic(link, "version: 1\ncards: []\n")
    assert victim.read_text() == "root:secret\n" and link.is_symlink()
    os.lchown(link, 0, 0)  # root's own link is written through
    write_atomic(link, "version: 1\n")
    assert victim.read_text() == "version: 1\n" and link.is_symlink()
