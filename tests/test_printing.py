"""`klick cards print`: faces at ID-1 size on A4, read back from the PDF and rendered to pixels."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from cards.printing import (
    BAND_MM,
    CARD_H_MM,
    CARD_W_MM,
    FONT_BOLD,
    MM,
    _register_fonts,
    face_origin,
    find_fonts,
    fit_text,
    text_colour_for,
)
from tests.conftest import REPO

DEMO = str(REPO / "config" / "demo-cards.yaml")
DEMO_COLOURS = ["#1F4E9C", "#B3261E", "#1B6E3A", "#6A2C91", "#FFD43B"]


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


def test_rendered_first_page_shows_five_faces(klick, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed")
    from PIL import Image

    out = tmp_path / "cards.pdf"
    assert klick("cards", "print", "--registry", DEMO, "--out", str(out)).returncode == 0
    dpi = 40
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-png", "-f", "1", "-l", "1", "-singlefile", str(out), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    image = Image.open(tmp_path / "page.png").convert("RGB")
    px_per_mm = dpi / 25.4
    seen = []
    for slot in range(8):
        x_mm, y_mm = face_origin(slot)
        # The middle of the band's left edge region: colour band, clear of the label's letters.
        x = (x_mm + 2) * px_per_mm
        y = (297 - (y_mm + CARD_H_MM - BAND_MM / 2)) * px_per_mm
        seen.append(image.getpixel((round(x), round(y))))
    for slot, colour in enumerate(DEMO_COLOURS):
        want = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert all(abs(a - b) <= 12 for a, b in zip(seen[slot], want)), (slot, seen[slot], want)
    assert seen[5:] == [(255, 255, 255)] * 3  # the other three places on the page are empty paper


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
    assert text_colour_for("#1F4E9C") == "#FFFFFF"
    assert text_colour_for("#FFD43B") == "#000000"
    assert text_colour_for("#FFFFFF") == "#000000"
    assert text_colour_for("#111111") == "#FFFFFF"


def test_fonts_come_from_matplotlib_without_pyplot():
    import sys

    regular, bold = find_fonts()
    assert regular.name == "DejaVuSans.ttf" and bold.is_file()
    assert "matplotlib.pyplot" not in sys.modules


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")), min_size=1, max_size=40))
def test_a_label_always_fits_its_band(label):
    from reportlab.pdfbase.pdfmetrics import stringWidth

    _register_fonts()
    width, height = (CARD_W_MM - 6) * MM, (BAND_MM - 4) * MM
    size, lines = fit_text(label, lambda t, s: stringWidth(t, FONT_BOLD, s), width, height, 28, 9)
    assert 1 <= len(lines) <= 2
    assert all(stringWidth(line, FONT_BOLD, size) <= width + 1e-6 for line in lines)
    if label.split() and size > 9:
        assert " ".join(lines) == " ".join(label.split())  # shrunk, never cut, while it can shrink


def test_a_short_label_gets_the_largest_size():
    from reportlab.pdfbase.pdfmetrics import stringWidth

    _register_fonts()
    size, lines = fit_text("Anna", lambda t, s: stringWidth(t, FONT_BOLD, s), 77 * MM, 14 * MM, 28, 9)
    assert (size, lines) == (28, ["Anna"])
    size, lines = fit_text("Mormor och morfar i Helsingborg", lambda t, s: stringWidth(t, FONT_BOLD, s), 77 * MM, 14 * MM, 28, 9)
    assert size < 28 and len(lines) == 2
