"""The text-fitting rule (cards.fitting): as large as fits, lines broken only between words.

Most tests use a made-up proportional measure (each character its own width, times the size), so
the rule can be checked against a brute-force oracle; a few use the real DejaVu Sans Bold widths
the printed card uses, with the words residents actually have on their cards.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cards.fitting import ELLIPSIS, Fitted, fit_text

LINE = 1.2


def char_width(ch: str) -> float:
    """A made-up font: widths from 0.3 to 0.9 em, a fixed one per character."""
    return 0.3 + (ord(ch) * 7919 % 7) / 10


def measure(text: str, size: float) -> float:
    return sum(char_width(c) for c in text) * size


def fits(words: list[str], size: float, width: float, height: float, max_lines: int | None) -> bool:
    """The oracle: can the words be put in lines (cut only at spaces) that fit the box at this size?"""
    room = int(height / (size * LINE) + 1e-9)
    if max_lines is not None:
        room = min(room, max_lines)
    n = len(words)
    for cuts in range(min(room, n)):
        for places in itertools.combinations(range(1, n), cuts):
            bounds = (0, *places, n)
            lines = [" ".join(words[a:b]) for a, b in zip(bounds, bounds[1:])]
            if all(measure(line, size) <= width + 1e-9 for line in lines):
                return True
    return False


word = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "M")), min_size=1, max_size=18)
spaces = st.sampled_from([" ", "  ", "\n", "\t", " \u3000 "])


@st.composite
def texts(draw, max_words: int = 7) -> str:
    words = draw(st.lists(word, min_size=1, max_size=max_words))
    out = draw(st.sampled_from(["", " ", "\n"]))
    for w in words:
        out += w + draw(spaces)
    return out


def _check_fitted(fitted: Fitted, text: str, width: float, height: float, max_size: float, min_size: float, max_lines):
    words = text.split()
    assert min_size <= fitted.size <= max_size
    if max_lines is not None:
        assert len(fitted.lines) <= max_lines
    if not fitted.shortened:
        # Every word whole, in order, none lost: the lines are the words cut only at spaces.
        assert [line.split() for line in fitted.lines] and sum((line.split(" ") for line in fitted.lines), []) == words
        assert all(measure(line, fitted.size) <= width + 1e-9 for line in fitted.lines)
        assert len(fitted.lines) * fitted.size * LINE <= height + 1e-9


@settings(max_examples=400, deadline=None)
@given(
    texts(),
    st.floats(20, 2000),
    st.floats(10, 600),
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([(104.0, 40.0, 1.0), (28.0, 9.0, 0.5), (60.0, 60.0, 1.0), (48.0, 12.0, 4.0)]),
)
def test_the_largest_size_that_fits_wins_and_words_are_never_broken(text, width, height, max_lines, sizes):
    max_size, min_size, step = sizes
    fitted = fit_text(
        text, width, height, measure, max_size=max_size, min_size=min_size, line_height=LINE, max_lines=max_lines, step=step
    )
    _check_fitted(fitted, text, width, height, max_size, min_size, max_lines)
    words = text.split()
    if fitted.shortened:
        assert fitted.size == min_size and not fits(words, min_size, width, height, max_lines)
        return
    assert fits(words, fitted.size, width, height, max_lines)
    bigger = fitted.size + step
    if bigger <= max_size + 1e-9:
        assert not fits(words, bigger, width, height, max_lines), "a larger size would have fitted"


@settings(max_examples=300, deadline=None)
@given(texts(max_words=12), st.floats(30, 800), st.floats(15, 400), st.sampled_from([None, 1, 2]))
def test_a_shortened_text_still_stays_inside_its_box(text, width, height, max_lines):
    min_size = 10.0
    # The rule promises the box only when it holds one line of "…" at the smallest size.
    assume(measure(ELLIPSIS, min_size) <= width and min_size * LINE <= height)
    fitted = fit_text(text, width, height, measure, max_size=40, min_size=min_size, line_height=LINE, max_lines=max_lines)
    room = int(height / (fitted.size * LINE) + 1e-9)
    assert 1 <= len(fitted.lines) <= (room if max_lines is None else min(room, max_lines))
    assert all(measure(line, fitted.size) <= width + 1e-9 for line in fitted.lines)
    if fitted.shortened:
        assert fitted.lines[-1].endswith(ELLIPSIS) or any(line.endswith(ELLIPSIS) for line in fitted.lines)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8", categories=("L",)), min_size=1, max_size=8), min_size=2, max_size=8))
def test_lines_are_as_even_as_they_can_be(words):
    text = " ".join(words)
    width = measure(text, 10) * 0.7  # too wide for one line at 10: two or more lines
    assume(all(measure(w, 10) <= width for w in words))
    fitted = fit_text(text, width, 10 * LINE * len(words), measure, max_size=10, min_size=10, line_height=LINE)
    widest = max(measure(line, 10) for line in fitted.lines)
    n = len(fitted.lines)
    for places in itertools.combinations(range(1, len(words)), n - 1):
        bounds = (0, *places, len(words))
        other = max(measure(" ".join(words[a:b]), 10) for a, b in zip(bounds, bounds[1:]))
        assert widest <= other + 1e-9


def test_empty_and_blank_text_give_no_lines_at_full_size():
    for text in ("", "   ", "\n\t"):
        assert fit_text(text, 100, 100, measure, max_size=30, min_size=10) == Fitted(30, ())


def test_settings_that_cannot_work_are_refused_in_plain_words():
    for kw in ({"max_size": 10, "min_size": 20}, {"max_size": 10, "min_size": 0}, {"max_size": 10, "min_size": 5, "step": 0}):
        with pytest.raises(ValueError, match="min_size"):
            fit_text("Anna", 100, 100, measure, **kw)


def test_ten_thousand_words_are_fitted_quickly_and_whole():
    text = " ".join(["Barnbarnen"] * 10_000)
    fitted = fit_text(text, 800, 600, measure, max_size=104, min_size=40)
    assert fitted.shortened and fitted.size == 40 and len(fitted.lines) == int(600 / (40 * 1.2))
    assert all(line.rstrip(ELLIPSIS).split(" ") and set(line.rstrip(ELLIPSIS).split()) <= {"Barnbarnen"} for line in fitted.lines)


def test_a_measure_is_asked_once_per_text_and_size():
    asked = []

    def counting(text, size):
        asked.append((text, size))
        return measure(text, size)

    fit_text("Morfar Karl-Gustaf Andersson", 300, 200, counting, max_size=104, min_size=20)
    assert len(asked) == len(set(asked))


# --- the real font of the printed card ------------------------------------------------------------


@pytest.fixture(scope="module")
def bold():
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from cards.printing import FONT_BOLD, _register_fonts

    _register_fonts()
    return lambda text, size: stringWidth(text, FONT_BOLD, size)


@pytest.mark.parametrize(
    "label",
    [
        "Barnbarnen",
        "Kunskapskanalen",
        "Rapport",
        "Morfar Karl-Gustaf Andersson",
        "Mormor och morfar i Helsingborg med barnen",
        "Sjukvårdsrådgivningen Vårdcentralen Öresund",
    ],
)
def test_swedish_compound_words_are_never_broken(bold, label):
    # The carer window's preview box, in points, and the launcher's label size range.
    fitted = fit_text(label, 250, 200, bold, max_size=104, min_size=12)
    assert not fitted.shortened
    assert " ".join(fitted.lines) == label
    for line in fitted.lines:
        assert all(w in label.split() for w in line.split())
        assert bold(line, fitted.size) <= 250


def test_a_single_word_shrinks_rather_than_wraps(bold):
    fitted = fit_text("Barnbarnen", 200, 300, bold, max_size=104, min_size=12)
    assert fitted.lines == ("Barnbarnen",) and bold("Barnbarnen", fitted.size) <= 200 < bold("Barnbarnen", fitted.size + 1)


def test_a_forty_letter_label_fits_in_two_even_lines(bold):
    label = "Morfar Karl-Gustaf Andersson på Ängsgård"
    assert len(label) == 40  # the longest label a card may have
    fitted = fit_text(label, 220, 90, bold, max_size=28, min_size=9, line_height=1.15, max_lines=2, step=0.5)
    assert len(fitted.lines) == 2 and not fitted.shortened
    widths = [bold(line, fitted.size) for line in fitted.lines]
    assert max(widths) <= 220 and min(widths) > 0.5 * max(widths)


def test_a_forty_letter_word_that_cannot_fit_is_cut_with_an_ellipsis(bold):
    word = "W" * 40
    fitted = fit_text(word, 200, 40, bold, max_size=28, min_size=9, step=0.5)
    assert fitted.shortened and fitted.size == 9
    assert fitted.lines[0].endswith(ELLIPSIS) and bold(fitted.lines[0], 9) <= 200
