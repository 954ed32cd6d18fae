"""Card faces to print: ID-1 size (85.6 x 54 mm) on A4, with crop marks, ready to cut and glue.

A resident with poor vision reads the face, not the screen, so the label is as large as the face
allows and shrinks only as far as it must; the colour band matches the colour the launcher shows.
Each face is a PDF form object exactly one card in size, so its size can be checked by reading
the PDF back. Backs (optional) follow each page of faces, mirrored left to right, so a duplex
printer flipping on the long edge puts each back behind its own face.

The layout (which text size fits, where a face goes) is pure and separate from the drawing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cards.describe import describe
from cards.model import Card

__all__ = [
    "CARD_W_MM",
    "CARD_H_MM",
    "PER_PAGE",
    "PrintError",
    "PrintResult",
    "find_fonts",
    "fit_text",
    "face_origin",
    "text_colour_for",
    "render_cards",
    "pdf_bytes",
]

MM = 72.0 / 25.4
CARD_W_MM, CARD_H_MM = 85.6, 54.0
A4_W_MM, A4_H_MM = 210.0, 297.0
COLS, ROWS = 2, 4
PER_PAGE = COLS * ROWS
GAP_MM = 10.0
#: Crop marks start this far outside the card and are this long: they never touch a face.
MARK_OFFSET_MM, MARK_LEN_MM = 1.5, 3.0
BAND_MM = 18.0
LABEL_MAX_PT, LABEL_MIN_PT = 28.0, 9.0
LINE_MAX_PT, LINE_MIN_PT = 8.0, 5.0
PAD_MM = 3.0

FONT, FONT_BOLD = "KlickSans", "KlickSans-Bold"


class PrintError(Exception):
    """The faces cannot be made; the message says why in plain words."""


@dataclass(frozen=True)
class PrintResult:
    path: Path
    faces: int
    pages: int


# --- pure layout --------------------------------------------------------------------------------


def face_origin(index: int, *, back: bool = False) -> tuple[float, float]:
    """Bottom-left corner (mm from the page's bottom-left) of the face in slot ``index`` on its page.

    Backs are mirrored left to right so that, printed duplex (long-edge flip), each back lands
    behind its face.
    """
    slot = index % PER_PAGE
    row, col = divmod(slot, COLS)
    if back:
        col = COLS - 1 - col
    left = (A4_W_MM - COLS * CARD_W_MM - (COLS - 1) * GAP_MM) / 2
    top = (A4_H_MM - ROWS * CARD_H_MM - (ROWS - 1) * GAP_MM) / 2
    x = left + col * (CARD_W_MM + GAP_MM)
    y = A4_H_MM - top - CARD_H_MM - row * (CARD_H_MM + GAP_MM)
    return x, y


def fit_text(
    text: str,
    width_of: Callable[[str, float], float],
    max_width: float,
    max_height: float,
    max_size: float,
    min_size: float,
    max_lines: int = 2,
    line_gap: float = 1.15,
) -> tuple[float, list[str]]:
    """The largest size (and the lines) at which ``text`` fits the box, one line preferred.

    ``width_of(text, size)`` measures in the same unit as the box. Sizes step down by half a
    point; one line is tried at every size before the text is broken into lines, because a
    single large word reads best. Below ``min_size`` the text is shortened with an ellipsis,
    so the result always fits.
    """
    text = " ".join(text.split())
    size = max_size
    candidates = [[text]] + [lines for n in range(2, max_lines + 1) for lines in [_split_lines(text, n)] if lines]
    while size >= min_size - 1e-9:
        for lines in candidates:
            if len(lines) * size * line_gap <= max_height + 1e-9 and all(width_of(l, size) <= max_width for l in lines):
                return size, lines
        size -= 0.5
    size = min_size
    shortened = text
    while shortened and width_of(shortened + "…", size) > max_width:
        shortened = shortened[:-1]
    return size, [shortened.rstrip() + "…" if shortened != text else text]


def _split_lines(text: str, n: int) -> list[str] | None:
    """``text`` broken at spaces into ``n`` lines as even as possible, or None if it has too few words."""
    words = text.split(" ")
    if len(words) < n:
        return None
    if n == 2:
        best = min(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) - len(" ".join(words[i:]))))
        return [" ".join(words[:best]), " ".join(words[best:])]
    per = max(1, len(words) // n)
    lines = [" ".join(words[i * per : (i + 1) * per]) for i in range(n - 1)]
    lines.append(" ".join(words[(n - 1) * per :]))
    return lines


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def text_colour_for(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` (WCAG contrast ratio)."""
    lum = _luminance(background)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#FFFFFF"


# --- fonts --------------------------------------------------------------------------------------


def find_fonts() -> tuple[Path, Path]:
    """A regular and a bold TrueType font with å, ä and ö: DejaVu Sans, which matplotlib ships.

    Only ``matplotlib`` itself is imported (never pyplot), to find its data folder.
    """
    folders = []
    try:
        import matplotlib

        folders.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    folders.append(Path("/usr/share/fonts/truetype/dejavu"))
    for folder in folders:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise PrintError("No font with å, ä and ö was found (DejaVu Sans). Install matplotlib or the fonts-dejavu package.")


def _register_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    regular, bold = find_fonts()
    pdfmetrics.registerFont(TTFont(FONT, str(regular)))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(bold)))


# --- drawing ------------------------------------------------------------------------------------


def pdf_bytes(cards: Sequence[Card], *, locale: str = "sv", backs: bool = False) -> tuple[bytes, int]:
    """The PDF for ``cards`` and its page count. Raises :class:`PrintError` for no cards."""
    if not cards:
        raise PrintError("There are no cards to print.")
    from reportlab.lib.colors import HexColor
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.pdfgen.canvas import Canvas

    _register_fonts()
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(A4_W_MM * MM, A4_H_MM * MM), invariant=True)
    canvas.setTitle("Klick — kort att skriva ut" if locale == "sv" else "Klick — cards to print")
    canvas.setAuthor("Klick")
    faces = [(i, card, _define_face(canvas, i, card, locale, HexColor, stringWidth)) for i, card in enumerate(cards)]
    back_forms = [_define_back(canvas, i, card, locale, HexColor, stringWidth) for i, card in enumerate(cards)] if backs else []
    pages = 0
    for start in range(0, len(cards), PER_PAGE):
        chunk = faces[start : start + PER_PAGE]
        for i, _card, form in chunk:
            _place(canvas, form, face_origin(i))
        canvas.showPage()
        pages += 1
        if backs:
            for i, _card, _form in chunk:
                _place(canvas, back_forms[i], face_origin(i, back=True))
            canvas.showPage()
            pages += 1
    canvas.save()
    return buf.getvalue(), pages


def render_cards(cards: Sequence[Card], out: str | Path, *, locale: str = "sv", backs: bool = False) -> PrintResult:
    """Write the faces of ``cards`` (in order, eight to a page) to ``out``, atomically."""
    from klick.atomic import write_atomic

    data, pages = pdf_bytes(cards, locale=locale, backs=backs)
    write_atomic(out, data)
    return PrintResult(Path(out), len(cards), pages)


def _place(canvas, form: str, origin_mm: tuple[float, float]) -> None:
    x, y = origin_mm[0] * MM, origin_mm[1] * MM
    canvas.saveState()
    canvas.translate(x, y)
    canvas.doForm(form)
    canvas.restoreState()
    _crop_marks(canvas, x, y, CARD_W_MM * MM, CARD_H_MM * MM)


def _crop_marks(canvas, x: float, y: float, w: float, h: float) -> None:
    off, length = MARK_OFFSET_MM * MM, MARK_LEN_MM * MM
    canvas.saveState()
    canvas.setLineWidth(0.3)
    canvas.setStrokeColorRGB(0, 0, 0)
    for cx, sx in ((x, -1), (x + w, 1)):
        for cy, sy in ((y, -1), (y + h, 1)):
            canvas.line(cx + sx * off, cy, cx + sx * (off + length), cy)  # along the horizontal edge
            canvas.line(cx, cy + sy * off, cx, cy + sy * (off + length))  # along the vertical edge
    canvas.restoreState()


def _define_face(canvas, index: int, card: Card, locale: str, HexColor, stringWidth) -> str:
    name = f"face{index}"
    w, h = CARD_W_MM * MM, CARD_H_MM * MM
    pad = PAD_MM * MM
    canvas.beginForm(name, lowerx=0, lowery=0, upperx=w, uppery=h)
    canvas.setFillColor(HexColor("#FFFFFF"))
    canvas.rect(0, 0, w, h, stroke=0, fill=1)
    band = BAND_MM * MM
    canvas.setFillColor(HexColor(card.colour))
    pale = _luminance(card.colour) > 0.8  # a white band on white paper needs an edge to be seen
    canvas.setStrokeColor(HexColor("#888888"))
    canvas.setLineWidth(0.5)
    canvas.rect(0, h - band, w, band, stroke=1 if pale else 0, fill=1)
    # The label, as large as the band allows.
    size, lines = fit_text(
        card.label, lambda t, s: stringWidth(t, FONT_BOLD, s), w - 2 * pad, band - 2 * pad * 0.6, LABEL_MAX_PT, LABEL_MIN_PT
    )
    canvas.setFillColor(HexColor(text_colour_for(card.colour)))
    canvas.setFont(FONT_BOLD, size)
    _centred_lines(canvas, lines, size, w / 2, h - band / 2)
    # The "what it does" line along the bottom.
    line_area = 7.0 * MM
    what = describe(card, locale) or card.label
    lsize, llines = fit_text(
        what, lambda t, s: stringWidth(t, FONT, s), w - 2 * pad, line_area - 2, LINE_MAX_PT, LINE_MIN_PT, max_lines=1
    )
    canvas.setFillColor(HexColor("#222222"))
    canvas.setFont(FONT, lsize)
    _centred_lines(canvas, llines, lsize, w / 2, line_area / 2 + 1)
    # The picture between them.
    if card.picture is not None:
        _draw_picture(canvas, card.picture, pad, line_area, w - 2 * pad, h - band - line_area - pad * 0.5)
    canvas.endForm()
    return name


def _define_back(canvas, index: int, card: Card, locale: str, HexColor, stringWidth) -> str:
    name = f"back{index}"
    w, h = CARD_W_MM * MM, CARD_H_MM * MM
    pad = PAD_MM * MM
    sv = locale == "sv"
    canvas.beginForm(name, lowerx=0, lowery=0, upperx=w, uppery=h)
    canvas.setFillColor(HexColor("#FFFFFF"))
    canvas.rect(0, 0, w, h, stroke=0, fill=1)
    strip = 6.0 * MM
    canvas.setFillColor(HexColor(card.colour))
    canvas.rect(0, 0, w, strip, stroke=0, fill=1)
    # A carer card's ID is the key to the carer screen: a copy of it (any blank card a cheap
    # writer can program) must not be one photo of the card's back away.
    card_id = "" if card.role == "carer" else ("Kort-ID " if sv else "Card ID ") + card.uid
    rows = [
        (FONT_BOLD, 14.0, card.label),
        (FONT, 8.0, describe(card, locale)),
        (FONT, 7.0, card_id),
        (
            FONT,
            7.0,
            "Sätt kortet i läsaren på surfplattans baksida." if sv else "Put the card into the reader behind the tablet.",
        ),
    ]
    y = h - pad
    canvas.setFillColor(HexColor("#111111"))
    for font, max_size, text in rows:
        if not text:
            continue
        size, lines = fit_text(
            text, lambda t, s, f=font: stringWidth(t, f, s), w - 2 * pad, max_size * 1.2, max_size, 5.0, max_lines=1
        )
        y -= size * 1.5
        canvas.setFont(font, size)
        canvas.drawCentredString(w / 2, y, lines[0])
    canvas.setFont(FONT_BOLD, 8.0)
    canvas.setFillColor(HexColor(text_colour_for(card.colour)))
    canvas.drawCentredString(w / 2, strip / 2 - 3, "Klick")
    canvas.endForm()
    return name


def _centred_lines(canvas, lines: list[str], size: float, cx: float, cy: float) -> None:
    """Draw lines centred on (cx, cy), using the cap height so the text sits visually centred."""
    step = size * 1.15
    first = cy + (len(lines) - 1) * step / 2 - size * 0.36
    for n, line in enumerate(lines):
        canvas.drawCentredString(cx, first - n * step, line)


def _draw_picture(canvas, picture: Path, x: float, y: float, w: float, h: float) -> None:
    """Draw the picture fitted into the box; a picture that cannot be read leaves the box empty."""
    from reportlab.lib.utils import ImageReader

    try:
        image = ImageReader(str(picture))
        iw, ih = image.getSize()
    except Exception:  # a missing or broken picture must not stop the other faces from printing
        return
    scale = min(w / iw, h / ih)
    dw, dh = iw * scale, ih * scale
    canvas.drawImage(image, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh, mask="auto")
