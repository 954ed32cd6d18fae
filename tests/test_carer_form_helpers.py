"""Two small decisions of the carer's form (cards.carer.model), checked without a window.

A bare address gets https:// (and then passes the very check `klick cards check` makes); Skype
is offered only to a card that already has it.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cards.carer.model import check_form, new_form, provider_choices, with_https
from cards.registry import Registry


def test_a_bare_address_gets_https():
    assert with_https("sverigesradio.se") == "https://sverigesradio.se"
    assert with_https(" www.smhi.se/vader ") == "https://www.smhi.se/vader"
    assert with_https("meet.example.se:8443/rum?x=1") == "https://meet.example.se:8443/rum?x=1"
    assert with_https("åre.se") == "https://åre.se"


def test_anything_but_a_bare_address_is_left_for_the_check_to_explain():
    for text in (
        "",
        "   ",
        "http://example.se",
        "https://example.se",
        "ftp://x.se",
        "svt play",
        "localhost",
        "1.2.3.4",
        "a.b",
        "x",
    ):
        assert with_https(text) == text, text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_https_is_added_at_most_once_and_only_in_front(text):
    out = with_https(text)
    assert out == text or (out == "https://" + text.strip() and "://" not in text and " " not in text.strip())
    assert with_https(out) == out


def test_a_web_card_typed_without_https_is_saved_with_it(tmp_path: Path):
    form = new_form("04AA").set("kind", "web").set("label", "Radio").set("url", "sverigesradio.se")
    checked = check_form(form, Registry(()), tmp_path)
    assert checked.ok, checked.errors
    assert checked.card.action.url == "https://sverigesradio.se"
    call = new_form("04AB").set("kind", "call").set("label", "Anna").set("server", "meet.example.se").set("room", "familjen")
    checked = check_form(call, Registry(()), tmp_path)
    assert checked.ok, checked.errors
    assert checked.card.action.server == "https://meet.example.se"


def test_an_address_that_is_wrong_in_another_way_is_still_refused(tmp_path: Path):
    form = new_form("04AA").set("kind", "web").set("label", "Radio").set("url", "http://sverigesradio.se")
    assert "url" in check_form(form, Registry(()), tmp_path).errors


def test_skype_is_offered_only_to_a_card_that_has_it():
    assert provider_choices(new_form("04AA").set("kind", "call")) == ("jitsi", "teams")
    assert provider_choices(new_form("04AA").set("kind", "call").set("provider", "teams")) == ("jitsi", "teams")
    assert provider_choices(new_form("04AA").set("kind", "call").set("provider", "skype")) == ("jitsi", "teams", "skype")
