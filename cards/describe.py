"""A card's action in the plain words a carer and a resident read: "Ringer Anna med videosamtal"."""

from __future__ import annotations

from cards.model import Action, Card, Command, PhotoAlbum, SvtPlay, VideoCall, Web

__all__ = ["describe", "describe_action"]

_CHANNEL_NAMES = {"svt1": "SVT1", "svt2": "SVT2", "svtbarn": "SVT Barn", "kunskapskanalen": "Kunskapskanalen", "svt24": "SVT24"}


def describe(card: Card, locale: str = "sv") -> str:
    if card.role == "carer":
        return "Öppnar kontaktpersonens läge" if locale == "sv" else "Opens carer mode"
    return describe_action(card.action, card.label, locale) if card.action else ""


def describe_action(action: Action, label: str = "", locale: str = "sv") -> str:
    sv = locale == "sv"
    if isinstance(action, VideoCall):
        who = label or action.display_name or action.name or action.user
        return f"Ringer {who} med videosamtal" if sv else f"Video call to {who}"
    if isinstance(action, SvtPlay):
        if action.channel:
            channel = _CHANNEL_NAMES.get(action.channel, action.channel)
            return f"Visar {channel} direkt på SVT Play" if sv else f"Shows {channel} live on SVT Play"
        program = action.program.strip("/").replace("-", " ").capitalize()
        return f"Visar {program} på SVT Play" if sv else f"Shows {program} on SVT Play"
    if isinstance(action, PhotoAlbum):
        return "Visar fotoalbumet" if sv else "Shows the photo album"
    if isinstance(action, Web):
        from urllib.parse import urlsplit

        host = urlsplit(action.url).hostname or action.url
        return f"Öppnar webbsidan {host}" if sv else f"Opens the web page {host}"
    if isinstance(action, Command):
        return f"Startar programmet {action.argv[0]}" if sv else f"Starts the program {action.argv[0]}"
    return ""
