"""Card faces to print: ID-1 size (85.6 x 54 mm) on A4, with crop marks, ready to cut and glue.

A resident with poor vision reads the face, not the screen, so the whole face is the card's colour
(a card is recognised by its colour from across the room), the label is as large as the face
allows and shrinks only as far as it must (by :mod:`cards.fitting`, never broken inside a word),
and the line saying what the card does is at least 11 pt. Every text stands on a background it
reaches 7:1 against (WCAG's enhanced contrast): black or white on the card's colour, or, where
neither does (white on a strong red reaches only 6.5:1), on a darker or lighter shade of that
colour behind the text alone.
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

from cards.colours import contrast, luminance, text_colour_for
from cards.describe import describe
from cards.fitting import Fitted, fit_text
from cards.model import Card
from cards.pictures import open_picture

__all__ = [
    "CARD_W_MM",
    "CARD_H_MM",
    "PER_PAGE",
    "PrintError",
    "PrintResult",
    "find_fonts",
    "face_origin",
    "face_layout",
    "FaceLayout",
    "TextArea",
    "Ink",
    "ink_on",
    "contrast",
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
#: The label's area at the top and the "what it does" area at the bottom of a face.
LABEL_AREA_MM = 18.0
LINE_AREA_MM = 10.5
LABEL_MAX_PT, LABEL_MIN_PT = 28.0, 9.0
#: The line saying what the card does: never under 11 pt, two lines at most.
LINE_MAX_PT, LINE_MIN_PT = 12.0, 11.0
PAD_MM = 3.0
#: WCAG's enhanced contrast, for every text on a face or a back.
MIN_CONTRAST = 7.0
LINE_GAP = 1.15

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


#: Paper takes pure black, the darkest ink (the screens use a softer near-black, cards.colours.BLACK).
BLACK, WHITE = "#000000", "#FFFFFF"
#: The backs are white paper with near-black words (18.9:1).
BACK_TEXT = "#111111"


@dataclass(frozen=True)
class Ink:
    """How to write on a colour: the text's colour, and the panel behind the text (None: none needed)."""

    text: str
    panel: str | None

    @property
    def background(self) -> str | None:
        return self.panel


def ink_on(colour: str, minimum: float = MIN_CONTRAST) -> Ink:
    """Black or white text on ``colour``; if neither reaches ``minimum``, a shade of it behind the text.

    The shade is the nearest one that reaches it: darker under white text (a strong red or green
    needs only a little), lighter under black text, whichever changes the colour less. The card
    keeps its colour everywhere else, so it is still recognised by it.
    """
    colour = colour.upper()
    best = text_colour_for(colour, BLACK, WHITE)
    if contrast(best, colour) >= minimum:
        return Ink(best, None)
    darker = _shade_until(colour, lambda c: contrast(WHITE, c) >= minimum, toward=0)
    lighter = _shade_until(colour, lambda c: contrast(BLACK, c) >= minimum, toward=255)
    if darker[1] <= lighter[1]:
        return Ink(WHITE, darker[0])
    return Ink(BLACK, lighter[0])


def _shade_until(colour: str, good: Callable[[str], bool], toward: int) -> tuple[str, int]:
    """``colour`` mixed toward black (0) or white (255) in steps of 1 %, until ``good``; and the steps."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    for step in range(0, 101):
        t = step / 100
        shade = "#{:02X}{:02X}{:02X}".format(*(round(c + (toward - c) * t) for c in (r, g, b)))
        if good(shade):
            return shade, step
    return (BLACK if toward == 0 else WHITE), 100  # not reached: black and white always do


@dataclass(frozen=True)
class TextArea:
    """One text on a face: where (points from the face's bottom-left), what, in which font and ink."""

    role: str  # "label" or "what"
    x: float
    y: float
    w: float
    h: float
    fitted: Fitted
    font: str
    ink: Ink


@dataclass(frozen=True)
class FaceLayout:
    """Everything drawn on one face, decided before anything is drawn: the drawing only follows it."""

    colour: str
    #: A pale face on white paper gets a thin grey edge, so it can be cut and seen.
    edge: bool
    texts: tuple[TextArea, ...]
    picture_box: tuple[float, float, float, float]  # x, y, w, h

    def pairs(self) -> list[tuple[str, str, str]]:
        """(which text, text colour, colour behind it) for every text on the face."""
        return [(t.role, t.ink.text, t.ink.panel or self.colour) for t in self.texts]


def face_layout(card: Card, locale: str, width_of: Callable[[str, str, float], float]) -> FaceLayout:
    """Where everything on ``card``'s face goes; ``width_of(text, font, size)`` measures in points."""
    w, h = CARD_W_MM * MM, CARD_H_MM * MM
    pad = PAD_MM * MM
    ink = ink_on(card.colour)
    label_h, line_h = LABEL_AREA_MM * MM, LINE_AREA_MM * MM
    inner_w = w - 2 * pad
    # Inside a panel the text keeps a margin from the panel's edge.
    margin = 1.5 * MM if ink.panel else 0.0
    label = fit_text(
        card.label,
        inner_w - 2 * margin,
        label_h - 2 * pad * 0.6,
        lambda t, s: width_of(t, FONT_BOLD, s),
        max_size=LABEL_MAX_PT,
        min_size=LABEL_MIN_PT,
        line_height=LINE_GAP,
        max_lines=2,
        step=0.5,
    )
    what = fit_text(
        describe(card, locale) or card.label,
        inner_w - 2 * margin,
        line_h - 2.0,
        lambda t, s: width_of(t, FONT, s),
        max_size=LINE_MAX_PT,
        min_size=LINE_MIN_PT,
        line_height=LINE_GAP,
        max_lines=2,
        step=0.5,
    )
    texts = (
        TextArea("label", pad, h - label_h, inner_w, label_h - pad * 0.4, label, FONT_BOLD, ink),
        TextArea("what", pad, pad * 0.3, inner_w, line_h - pad * 0.3, what, FONT, ink),
    )
    picture_box = (pad, line_h + pad * 0.3, inner_w, h - label_h - line_h - pad * 0.6)
    return FaceLayout(card.colour.upper(), luminance(card.colour) > 0.8, texts, picture_box)


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
    layout = face_layout(card, locale, lambda t, font, size: stringWidth(t, font, size))
    canvas.beginForm(name, lowerx=0, lowery=0, upperx=w, uppery=h)
    canvas.setFillColor(HexColor(layout.colour))
    canvas.setStrokeColor(HexColor("#888888"))
    canvas.setLineWidth(0.5)
    canvas.rect(0, 0, w, h, stroke=1 if layout.edge else 0, fill=1)
    if card.picture is not None:
        _draw_picture(canvas, card.picture, *layout.picture_box)
    for area in layout.texts:
        _draw_text(canvas, area, HexColor)
    canvas.endForm()
    return name


def _draw_text(canvas, area: TextArea, HexColor) -> None:
    fitted = area.fitted
    if area.ink.panel is not None:
        step = fitted.size * LINE_GAP
        panel_h = min(area.h, len(fitted.lines) * step + fitted.size * 0.8)
        canvas.setFillColor(HexColor(area.ink.panel))
        canvas.roundRect(area.x, area.y + (area.h - panel_h) / 2, area.w, panel_h, 1.5 * MM, stroke=0, fill=1)
    canvas.setFillColor(HexColor(area.ink.text))
    canvas.setFont(area.font, fitted.size)
    _centred_lines(canvas, list(fitted.lines), fitted.size, area.x + area.w / 2, area.y + area.h / 2)


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
        (FONT, 11.0, describe(card, locale)),
        (FONT, 7.0, card_id),
        (
            FONT,
            7.0,
            "Sätt kortet i läsaren på surfplattans baksida." if sv else "Put the card into the reader behind the tablet.",
        ),
    ]
    y = h - pad
    canvas.setFillColor(HexColor(BACK_TEXT))
    for font, max_size, text in rows:
        if not text:
            continue

        def width_in_font(t: str, s: float, font: str = font) -> float:
            return stringWidth(t, font, s)

        fitted = fit_text(
            text,
            w - 2 * pad,
            max_size * 1.2,
            width_in_font,
            max_size=max_size,
            min_size=5.0,
            max_lines=1,
            step=0.5,
        )
        y -= fitted.size * 1.5
        canvas.setFont(font, fitted.size)
        canvas.drawCentredString(w / 2, y, fitted.lines[0])
    ink = ink_on(card.colour)
    if ink.panel is not None:
        canvas.setFillColor(HexColor(ink.panel))
        canvas.roundRect(w / 2 - 8 * MM, 0.8 * MM, 16 * MM, strip - 1.6 * MM, 1 * MM, stroke=0, fill=1)
    canvas.setFont(FONT_BOLD, 8.0)
    canvas.setFillColor(HexColor(ink.text))
    canvas.drawCentredString(w / 2, strip / 2 - 3, "Klick")
    canvas.endForm()
    return name


def _centred_lines(canvas, lines: list[str], size: float, cx: float, cy: float) -> None:
    """Draw lines centred on (cx, cy), using the cap height so the text sits visually centred."""
    step = size * LINE_GAP
    first = cy + (len(lines) - 1) * step / 2 - size * 0.36
    for n, line in enumerate(lines):
        canvas.drawCentredString(cx, first - n * step, line)


def _draw_picture(canvas, picture: Path, x: float, y: float, w: float, h: float) -> None:
    """Draw the picture fitted into the box; a picture that cannot be read leaves the box empty."""
    from reportlab.lib.utils import ImageReader

    try:
        with open_picture(picture) as im:  # a format Klick shows, not too large; an EPS would be run by Ghostscript
            im.load()
            image = ImageReader(im.copy())
        iw, ih = image.getSize()
    except Exception:  # a missing or broken picture must not stop the other faces from printing
        return
    scale = min(w / iw, h / ih)
    dw, dh = iw * scale, ih * scale
    canvas.drawImage(image, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh, mask="auto")
