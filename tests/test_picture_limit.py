"""One pixel limit for a card picture: the carer window, a bundle and a printed face agree on it."""

from pathlib import Path

import pytest
from PIL import Image

from cards.bundle import pack_bundle, unpack_bundle
from cards.carer.pictures import make_thumb
from cards.model import Card, Web
from cards.pictures import MAX_PICTURE_PIXELS, PictureTooLarge, open_picture
from cards.registry import Registry, load_registry, save_registry


def _big_png(path: Path, width: int, height: int) -> Path:
    """A real PNG of that many pixels, made cheaply: one bit a pixel, all white."""
    Image.new("1", (width, height), 1).save(path, "PNG")
    return path


def _pack_and_unpack(tmp_path: Path, picture: Path) -> tuple[tuple[str, ...], Registry]:
    card_file = tmp_path / "cards.yaml"
    save_registry(Registry((Card("04A1", "Anna", Web("https://a.se"), picture=picture),)), card_file)
    result = pack_bundle(load_registry(card_file), card_file, tmp_path / "set.klick")
    unpack_bundle(tmp_path / "set.klick", tmp_path / "tablet" / "cards.yaml", check_policy=False)
    return result.notes, load_registry(tmp_path / "tablet" / "cards.yaml")


def test_a_62_megapixel_photo_the_carer_window_shows_also_travels_in_a_bundle(tmp_path):
    side = 7_900  # 62.4 million pixels: under the one limit
    assert side * side <= MAX_PICTURE_PIXELS
    picture = _big_png(tmp_path / "anna.png", side, side)
    assert make_thumb(picture).problem is None
    notes, unpacked = _pack_and_unpack(tmp_path, picture)
    assert notes == () and unpacked.get("04A1").picture.is_file()


def test_a_picture_over_the_limit_is_refused_by_open_picture_itself_and_left_out_everywhere(tmp_path):
    picture = _big_png(tmp_path / "huge.png", 8_100, 8_000)  # 64.8 million pixels
    with pytest.raises(PictureTooLarge, match="8100 x 8000 pixels"):
        open_picture(picture)
    assert make_thumb(picture).problem == "too_big" and make_thumb(picture).full_size == (8_100, 8_000)
    notes, unpacked = _pack_and_unpack(tmp_path, picture)
    assert any("8100 x 8000 pixels" in note for note in notes) and unpacked.get("04A1").picture is None
