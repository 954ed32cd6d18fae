"""`klick cards print`: faces at ID-1 size on A4, read back from the PDF and rendered to pixels."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from cards.printing import (
    CARD_H_MM,
    CARD_W_MM,
    LINE_MIN_PT,
    MIN_CONTRAST,
    MM,
    _register_fonts,
    contrast,
    face_layout,
    face_origin,
    find_fonts,
    ink_on,
)
from tests.conftest import REPO

DEMO = str(REPO / "config" / "demo-cards.yaml")
DEMO_COLOURS = ["#1F4E9C", "#B3261E", "#1B6E3A", "#6A2C91", "#FFD43B"]
PRINT_ARTIFACTS = REPO / "artifacts" / "print"


def _forms(page, prefix: str) -> list:
    xobjects = page["/Resources"]["/XObject"]
    return [xobjects[name].get_object() for name in sorted(xobjects) if prefix in name]


def test_demo_set_prints_five_faces_at_id1_size_on_a4(klick, tmp_path):
    out = tmp_path / "cards.pdf"
    result = klick("cards", "print", "--registry", DEMO, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "5 card faces on 1 page" in result.stdout
    pdf = PdfReader(out)
    assert len(pdf.pages) == 1
    page = pdf.pages[0]
    assert float(page.mediabox.width) == pytest.approx(210 * MM, abs=0.01)
    assert float(page.mediabox.height) == pytest.approx(297 * MM, abs=0.01)
    faces = _forms(page, "face")
    assert len(faces) == 5
    for face in faces:
        x0, y0, x1, y1 = (float(v) for v in face["/BBox"])
        assert (x1 - x0) / MM == pytest.approx(85.6, abs=0.01)
        assert (y1 - y0) / MM == pytest.approx(54.0, abs=0.01)
    text = page.extract_text()
    # Swedish letters come through as letters, so the embedded font really has them.
    assert "Vädret" in text and "Öppnar webbsidan" in text and "Ringer Anna med videosamtal" in text


def test_backs_follow_the_faces_mirrored_for_duplex(klick, tmp_path):
    out = tmp_path / "cards.pdf"
    result = klick("cards", "print", "--registry", DEMO, "--out", str(out), "--backs", "--locale", "en")
    assert result.returncode == 0, result.stderr
    pdf = PdfReader(out)
    assert len(pdf.pages) == 2
    assert len(_forms(pdf.pages[1], "back")) == 5
    assert "Card ID 04A2B3C4D5E680" in pdf.pages[1].extract_text()
    assert "Video call to Anna" in pdf.pages[0].extract_text()
    # A back sits in the mirrored column of its face, on the same row.
    front, back = face_origin(0), face_origin(0, back=True)
    assert front[1] == back[1] and front[0] + back[0] == pytest.approx(210 - CARD_W_MM)


def test_a_carer_cards_back_does_not_print_its_id(klick, tmp_path):
    cards = tmp_path / "cards.yaml"
    cards.write_text(
        "version: 1\ncards:\n"
        '  - uid: "04CA4E4000000001"\n    label: Personal\n    role: carer\n'
        '  - uid: "04A2B3C4D5E680"\n    label: Nyheter\n    action: {type: svt_play, program: /rapport}\n',
        encoding="utf-8",
    )
    out = tmp_path / "cards.pdf"
    result = klick("cards", "print", "--registry", str(cards), "--out", str(out), "--backs", "--locale", "en")
    assert result.returncode == 0, result.stderr
    pdf = PdfReader(out)
    backs = pdf.pages[1].extract_text()
    assert "Personal" in backs and "Card ID 04A2B3C4D5E680" in backs  # the resident's card keeps its ID
    raw = out.read_bytes()
    for text in (backs, pdf.pages[0].extract_text()):
        assert "04CA4E4000000001" not in text
    assert b"04CA4E4000000001" not in raw


def test_chosen_cards_in_any_spelling_print_in_the_order_given(klick, tmp_path):
    out = tmp_path / "two.pdf"
    result = klick("cards", "print", "0012345678", "04:b1:c2:d3:e4:f5:01", "--registry", DEMO, "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = PdfReader(out).pages[0].extract_text()
    assert text.index("Vädret") < text.index("Rapport")
    assert "Anna" not in text


def test_unknown_uid_is_a_clear_exit_1_and_writes_nothing(klick, tmp_path):
    out = tmp_path / "cards.pdf"
    result = klick("cards", "print", "DEADBEEF", "--registry", DEMO, "--out", str(out))
    assert result.returncode == 1
    assert "no card with ID DEADBEEF" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def _render_page(klick, tmp_path, dpi: int, *extra: str):
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed")
    from PIL import Image

    out = tmp_path / "cards.pdf"
    assert klick("cards", "print", "--registry", DEMO, "--out", str(out), *extra).returncode == 0
    stem = tmp_path / f"page-{dpi}"
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-png", "-f", "1", "-l", "1", "-singlefile", str(out), str(stem)], check=True, timeout=60
    )
    return Image.open(f"{stem}.png").convert("RGB")


def _hex(rgb) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def _pixel(image, dpi: int, x_mm: float, y_mm: float):
    """The pixel at (x, y) mm from the page's bottom-left."""
    px = dpi / 25.4
    return image.getpixel((round(x_mm * px), round((297 - y_mm) * px)))


def test_rendered_first_page_shows_whole_faces_in_colour(klick, tmp_path):
    dpi = 100
    image = _render_page(klick, tmp_path, dpi)
    PRINT_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    image.save(PRINT_ARTIFACTS / "demo-page1.png")
    for slot in range(8):
        x, y = face_origin(slot)
        # Near every corner and at both sides of the picture's row: all the card's colour.
        spots = [(x + 1.2, y + 1.2), (x + CARD_W_MM - 1.2, y + 1.2), (x + 1.2, y + CARD_H_MM - 1.2)]
        spots += [(x + CARD_W_MM - 1.2, y + CARD_H_MM - 1.2), (x + 4, y + CARD_H_MM / 2), (x + CARD_W_MM - 4, y + CARD_H_MM / 2)]
        seen = [_pixel(image, dpi, *spot) for spot in spots]
        if slot >= len(DEMO_COLOURS):
            assert seen == [(255, 255, 255)] * len(spots)  # the other three places on the page are empty paper
            continue
        want = tuple(int(DEMO_COLOURS[slot][i : i + 2], 16) for i in (1, 3, 5))
        for colour in seen:
            assert all(abs(a - b) <= 3 for a, b in zip(colour, want)), (slot, colour, want)


def test_every_text_on_a_face_reaches_7_to_1_in_the_colours_drawn(klick, tmp_path):
    """Read back from the rendered page: in each text's area, its background and its letters."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from cards.registry import load_registry

    dpi = 200
    image = _render_page(klick, tmp_path, dpi)
    _register_fonts()
    px = dpi / 25.4
    cards = load_registry(DEMO).cards
    measured = []
    for slot, card in enumerate(cards):
        layout = face_layout(card, "sv", stringWidth)
        fx, fy = face_origin(slot)
        for area in layout.texts:
            # The middle of the text's area: its lines, and the background between the letters.
            mid_h = len(area.fitted.lines) * area.fitted.size * 1.15
            left = (fx + (area.x + 0.1 * area.w) / MM) * px
            right = (fx + (area.x + 0.9 * area.w) / MM) * px
            top = (297 - fy - (area.y + area.h / 2 + mid_h / 2) / MM) * px
            bottom = (297 - fy - (area.y + area.h / 2 - mid_h / 2) / MM) * px
            crop = image.crop((round(left), round(top), round(right), round(bottom)))
            counts = sorted(crop.getcolors(1 << 20), reverse=True)
            background = _hex(counts[0][1])
            letters = max((_hex(c) for _n, c in counts), key=lambda c: contrast(c, background))
            ratio = contrast(letters, background)
            measured.append((card.label, area.role, letters, background, round(ratio, 2)))
            assert background == (area.ink.panel or layout.colour), (card.label, area.role, background)
            assert ratio >= MIN_CONTRAST, measured[-1]
            assert contrast(area.ink.text, area.ink.panel or layout.colour) >= MIN_CONTRAST
    # Red and green are the two demo colours that need a darker shade behind their words.
    shaded = {label for label, _role, _t, bg, _r in measured if bg not in DEMO_COLOURS}
    assert shaded == {"Rapport", "SVT1"}


def test_the_line_saying_what_a_card_does_is_at_least_11_pt():
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from cards.model import Card, VideoCall
    from cards.registry import load_registry

    _register_fonts()
    long_one = Card(
        "0A0B0C0D",
        "Morfar Karl-Gustaf Andersson på Ängsgård",
        VideoCall("jitsi", server="https://meet.example.se", room="x"),
        colour="#1B6E3A",
    )
    for card in (*load_registry(DEMO).cards, long_one):
        for locale in ("sv", "en"):
            what = next(a for a in face_layout(card, locale, stringWidth).texts if a.role == "what")
            assert what.fitted.size >= LINE_MIN_PT >= 11
            assert all(stringWidth(line, what.font, what.fitted.size) <= what.w for line in what.fitted.lines)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFF))
def test_any_card_colour_gets_words_at_7_to_1(value):
    colour = f"#{value:06X}"
    ink = ink_on(colour)
    assert contrast(ink.text, ink.panel or colour) >= MIN_CONTRAST
    if ink.panel is None:
        assert contrast(ink.text, colour) >= MIN_CONTRAST


def test_the_shade_behind_words_stays_close_to_the_cards_colour():
    for colour in ("#B3261E", "#1B6E3A"):
        ink = ink_on(colour)
        assert ink.text == "#FFFFFF" and ink.panel is not None
        assert contrast("#FFFFFF", colour) < 7 <= contrast("#FFFFFF", ink.panel) < 7.3  # only as dark as it must be
    for colour in ("#1F4E9C", "#6A2C91", "#F28C28", "#FFD43B", "#111111", "#FFFFFF"):
        assert ink_on(colour).panel is None, colour


def test_nine_cards_take_two_pages_and_a_missing_picture_still_prints(tmp_path):
    from cards.printing import render_cards
    from cards.registry import load_registry

    lines = ["version: 1", "cards:"]
    for n in range(9):
        lines += [
            f'  - uid: "0A0B0C{n:02X}"',
            f"    label: Kort {n} åäö",
            "    picture: nowhere.png",
            "    action: {type: web, url: 'https://example.se'}",
        ]
    path = tmp_path / "cards.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    registry = load_registry(path)
    assert registry.warnings  # the missing picture is a warning, not a refusal
    result = render_cards(registry.cards, tmp_path / "out.pdf")
    assert (result.faces, result.pages) == (9, 2)
    pdf = PdfReader(tmp_path / "out.pdf")
    assert len(_forms(pdf.pages[1], "face")) == 1


def test_text_colour_keeps_contrast_on_the_palette():
    # Paper takes pure black ink; the screens' black is a softer near-black.
    assert ink_on("#1F4E9C").text == "#FFFFFF"
    assert ink_on("#FFD43B").text == "#000000"
    assert ink_on("#FFFFFF").text == "#000000"
    assert ink_on("#111111").text == "#FFFFFF"


def test_printing_and_the_screens_share_one_contrast_rule():
    """WCAG's arithmetic and "black or white, whichever reads better" live in cards.colours alone."""
    import cards.printing
    from cards import colours

    assert cards.printing.contrast is colours.contrast
    assert cards.printing.text_colour_for is colours.text_colour_for
    assert not hasattr(cards.printing, "_luminance")
    for colour in colours.PALETTE.values():
        on_paper = "#111111" if ink_on(colour).text == "#000000" else "#FFFFFF"
        assert on_paper == colours.card_text_style(colour).text, colour


def test_fonts_come_from_matplotlib_without_pyplot():
    import sys

    regular, bold = find_fonts()
    assert regular.name == "DejaVuSans.ttf" and bold.is_file()
    assert "matplotlib.pyplot" not in sys.modules


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")), min_size=1, max_size=40))
def test_a_label_always_fits_its_area(label):
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from cards.model import Card, Web

    _register_fonts()
    card = Card("0A0B0C0D", label, Web("https://example.se"), colour="#B3261E")
    area = face_layout(card, "sv", stringWidth).texts[0]
    fitted = area.fitted
    assert area.role == "label" and len(fitted.lines) <= 2
    assert all(stringWidth(line, area.font, fitted.size) <= area.w for line in fitted.lines)
    assert len(fitted.lines) * fitted.size * 1.15 <= area.h
    if label.split() and not fitted.shortened:
        assert " ".join(fitted.lines) == " ".join(label.split())  # shrunk, never cut, while it can shrink


def test_a_short_label_gets_the_largest_size():
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from cards.model import Card, Web

    _register_fonts()
    sizes = {}
    for label in ("Anna", "Mormor och morfar i Helsingborg", "Kunskapskanalen"):
        card = Card("0A0B0C0D", label, Web("https://example.se"))
        sizes[label] = face_layout(card, "sv", stringWidth).texts[0].fitted
    assert sizes["Anna"].size == 28 and sizes["Anna"].lines == ("Anna",)
    assert sizes["Mormor och morfar i Helsingborg"].size < 28 and len(sizes["Mormor och morfar i Helsingborg"].lines) == 2
    assert sizes["Kunskapskanalen"].lines == ("Kunskapskanalen",)
