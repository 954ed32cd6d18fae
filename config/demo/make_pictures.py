"""Draws the demo card set's pictures and album photos (simple shapes: no logos, no real photos).

Run from the repository: ``.venv/bin/python config/demo/make_pictures.py``. The PNGs it makes are
committed, so the demo works offline and without this script.
"""

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def canvas(colour):
    img = Image.new("RGB", (480, 360), colour)
    return img, ImageDraw.Draw(img)


def person(d, x, y, scale, skin, shirt):
    d.ellipse([x - 40 * scale, y - 120 * scale, x + 40 * scale, y - 40 * scale], fill=skin)
    d.rounded_rectangle([x - 70 * scale, y - 35 * scale, x + 70 * scale, y + 90 * scale], 30, fill=shirt)


def anna():
    img, d = canvas("#DCE8F7")
    person(d, 240, 200, 1.3, "#E8B89A", "#1F4E9C")
    d.ellipse([185, 20, 295, 80], fill="#6B4226")  # hair
    return img


def tv(text_colour, screen):
    img, d = canvas("#EEEEEE")
    d.rounded_rectangle([60, 50, 420, 280], 24, fill="#222222")
    d.rectangle([85, 75, 395, 255], fill=screen)
    d.polygon([(200, 120), (200, 210), (280, 165)], fill=text_colour)
    d.rectangle([210, 285, 270, 310], fill="#222222")
    d.rectangle([150, 310, 330, 325], fill="#222222")
    return img


def album():
    img, d = canvas("#FFF4D6")
    for _i, (dx, dy, c) in enumerate([(-60, 10, "#F28C28"), (0, -10, "#1B6E3A"), (60, 10, "#6A2C91")]):
        d.rectangle([150 + dx, 80 + dy, 330 + dx, 280 + dy], fill="white", outline="#333333", width=4)
        d.rectangle([165 + dx, 95 + dy, 315 + dx, 230 + dy], fill=c)
    return img


def globe():
    img, d = canvas("#E4F2E7")
    d.ellipse([120, 60, 360, 300], outline="#1B6E3A", width=12)
    d.line([240, 60, 240, 300], fill="#1B6E3A", width=8)
    d.line([120, 180, 360, 180], fill="#1B6E3A", width=8)
    d.arc([170, 60, 310, 300], 0, 360, fill="#1B6E3A", width=8)
    return img


def photo(sky, ground, sun, people):
    img, d = canvas(sky)
    d.rectangle([0, 240, 480, 360], fill=ground)
    d.ellipse([360, 30, 440, 110], fill=sun)
    for x, shirt, s in people:
        person(d, x, 280, s, "#E8B89A", shirt)
    return img


def main():
    pics = HERE / "pictures"
    anna().save(pics / "anna.png")
    tv("#FFFFFF", "#1F4E9C").save(pics / "rapport.png")
    tv("#FFFFFF", "#1B6E3A").save(pics / "svt1.png")
    album().save(pics / "album.png")
    globe().save(pics / "web.png")
    photos = HERE / "album"
    photo("#9FD3F5", "#5DAE5B", "#FFD43B", [(150, "#B3261E", 0.9), (300, "#1F4E9C", 0.7)]).save(photos / "2026-06-midsommar.png")
    photo("#F9C784", "#D9A441", "#FFFFFF", [(240, "#6A2C91", 1.0)]).save(photos / "2026-08-stranden.png")
    photo("#CFE3F5", "#FFFFFF", "#F2F2F2", [(120, "#1B6E3A", 0.8), (240, "#F28C28", 0.6), (360, "#B3261E", 0.8)]).save(
        photos / "2026-01-snogubbe.png"
    )


if __name__ == "__main__":
    main()
