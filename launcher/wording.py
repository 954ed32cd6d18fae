"""Sentences built from a card or a date: pure, so the words can be checked without a screen."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from launcher.browser import TRY_LATER

__all__ = [
    "WEEKDAYS",
    "MONTHS",
    "date_words",
    "status_words",
    "svt_name",
    "failure_words",
    "owner_words",
    "waiting_words",
    "ended_words",
    "question_words",
]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def date_words(w: Any, when: _dt.date) -> str:
    """ "måndag 23 november": names from the catalogs, so no system locale has to be installed."""
    return w("{weekday} {day} {month}", weekday=w(WEEKDAYS[when.weekday()]), day=when.day, month=w(MONTHS[when.month - 1]))


def status_words(w: Any, card: Any, phase: str, mode: str) -> str:
    """What the resident is told while the action starts, and after a program closed itself."""
    if phase == "finished":
        return w("Finished. Take out the card.") if mode == "slot" else w("Finished.")
    action = card.action
    kind = getattr(action, "type", "")
    if kind == "video_call":
        # The card's label ("Anna"), never the account behind it (a Skype name, an address).
        return w("Calling {name}…", name=card.label)
    if kind == "svt_play":
        return w("Starting {label}…", label=svt_name(card))
    if kind == "photo_album":
        return w("Opening the pictures…")
    if kind == "web":
        return w("Opening {label}…", label=card.label)
    return w("Starting {label}…", label=card.label)


#: The channels by the names SVT gives them (the carer's words name them the same way, in cards.describe).
CHANNEL_NAMES = {"svt1": "SVT1", "svt2": "SVT2", "svtbarn": "SVT Barn", "kunskapskanalen": "Kunskapskanalen", "svt24": "SVT24"}


def svt_name(card: Any) -> str:
    """What an SVT Play card is called on the screen: its label, as the carer wrote it ("På spåret").

    Only a card without a label is named by its channel ("SVT1"); a program's address
    ("/pa-sparet") never names it, for an address has no å, ä or ö.
    """
    if card.label:
        return str(card.label)
    channel = str(getattr(card.action, "channel", "") or "")
    return CHANNEL_NAMES.get(channel, channel) or "SVT Play"


def failure_words(w: Any, card: Any, reason: str, mode: str = "slot") -> tuple[str, str]:
    """(title, explanation) for a failed action, in words a resident or a visitor can act on.

    A call is spoken of as a call with someone ("The call with Anna could not start."), never
    as if Anna were a program.
    """
    call = getattr(card.action, "type", "") == "video_call"
    if reason == "exited":
        # It ran and then closed (the resident closed it, or the browser gave up an hour in):
        # nothing "could not start", and nothing to explain.
        return (w("The call with {name} has ended.", name=card.label) if call else w("{label} closed.", label=card.label)), ""
    if call:
        title = w("The call with {name} could not start.", name=card.label)
    else:
        title = w("{label} could not start.", label=card.label)
    if reason in TRY_LATER:
        explain = w("Take out the card and try again later.") if mode == "slot" else w("Try again later.")
        return title, explain
    explain = {
        "missing": w("The tablet is missing something it needs. Ask your contact person for help."),
        "not_allowed": w("The tablet is not set up to start it. Ask your contact person for help."),
        "no_action": w("Nothing is set up for this card yet."),
        "no_pictures": w("There are no pictures in the album yet."),
        "cannot_start": w("Something on the tablet stopped it. Ask your contact person for help."),
        # A call card whose server the installer has not listed: no word like "server" here.
        "server_not_allowed": w("The tablet is not set up for this call. Ask your contact person for help."),
    }.get(reason, w("Something on the tablet stopped it. Ask your contact person for help."))
    return title, explain


def owner_words(w: Any, name: str) -> str:
    """ "Annas" / "Anna's": a Swedish name ending in s, x or z takes no extra s ("Lars kort")."""
    if getattr(w, "language", "sv") == "sv" and name[-1:].lower() in ("s", "x", "z"):
        return name
    return w("{name}'s", name=name)


def waiting_words(w: Any, card: Any) -> tuple[str, str]:
    """ "Anna väntar på dig." / "Sätt i Annas kort." for someone waiting in the card's room."""
    return w("{name} is waiting for you.", name=card.label), w("Put in {owner} card.", owner=owner_words(w, card.label))


def ended_words(w: Any, card: Any) -> str:
    return w("{name} has hung up.", name=card.label)


def question_words(w: Any, prompt: Any, card: Any, locale: str) -> str:
    """The question in the screen's language, ``{card}`` filled with the card it is about
    ("Hur gick samtalet med {card}?" → "Hur gick samtalet med Anna?"). A question whose card is
    gone (taken out of the card file since) says "the card" rather than a blank."""
    text = prompt.text.get(locale)
    if "{card}" not in text:
        return text
    name = getattr(card, "label", "") or w("the card")
    return text.replace("{card}", name)
