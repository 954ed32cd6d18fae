"""What a card picture may be: the kinds of image file Klick opens, and nothing else.

Pillow recognises dozens of formats by their first bytes, whatever the file is called, and some
of them hand the file to another program: an EPS "picture" is run by Ghostscript as soon as it is
drawn, a program with a long history of holes. A bundle may come from anyone, and its
``anna.png`` may be any of them. So every place that opens a card's picture (checking a bundle,
the carer window's thumbnails, printing card faces) asks Pillow for these formats only; anything
else is "not a picture Klick can show".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["PICTURE_FORMATS", "MAX_PICTURE_PIXELS", "PictureTooLarge", "open_picture"]

#: Pillow's names for the formats a card picture may have (README: PNG, JPEG, GIF, WebP or BMP).
PICTURE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
#: Past this a picture is not opened at all (a 40-megapixel camera's photo still is). The one limit:
#: what the carer window shows, a bundle carries and a printed face holds are the same pictures.
MAX_PICTURE_PIXELS = 64_000_000


class PictureTooLarge(ValueError):
    """More pixels than MAX_PICTURE_PIXELS: decoding it would take gigabytes of memory."""

    def __init__(self, path: str | Path, size: tuple[int, int]) -> None:
        self.size = size
        super().__init__(f"{path} is {size[0]} x {size[1]} pixels, far too large for a card picture")


def open_picture(path: str | Path) -> Any:
    """``PIL.Image.open`` for a card picture: only PICTURE_FORMATS are even tried.

    Raises what Pillow raises for anything else (``PIL.UnidentifiedImageError``, an ``OSError``),
    and :class:`PictureTooLarge` past MAX_PICTURE_PIXELS, before any pixel is decoded.
    """
    from PIL import Image

    image = Image.open(path, formats=PICTURE_FORMATS)
    if image.width * image.height > MAX_PICTURE_PIXELS:
        size = image.size
        image.close()
        raise PictureTooLarge(path, size)
    return image
