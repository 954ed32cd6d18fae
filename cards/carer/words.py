"""Every word the carer tool shows, in Swedish and English, side by side so neither can lag behind.

The registry's own messages are in English (they are also read by installers in a terminal);
:func:`problem_words` puts the ones a carer can meet in the editor into plain Swedish, and leaves
any other message as it is rather than hide it. The same for the card reader: why the window's
own bridge did not start (:func:`bridge_words`, by the reason's code) and what the reader's
driver says about it (:func:`reader_words`), so the footer is in one language.
"""

from __future__ import annotations

import re

__all__ = ["WORDS", "LANGUAGES", "words", "problem_words", "bridge_words", "reader_words"]

LANGUAGES = ("sv", "en")

#: key → (Swedish, English). ``{name}`` fields are filled in by :func:`words`.
WORDS: dict[str, tuple[str, str]] = {
    "title": ("Klick – korten", "Klick – the cards"),
    "cards_heading": ("Korten", "The cards"),
    "no_cards": ("Inga kort ännu. Tryck på ”Programmera ett nytt kort”.", "No cards yet. Press “Program a new card”."),
    "new_card": ("Programmera ett nytt kort", "Program a new card"),
    "undo": ("Ångra", "Undo"),
    "undo_nothing": ("Det finns inget att ångra.", "There is nothing to undo."),
    "undone": ("Ångrat. Korten är som förut.", "Undone. The cards are as they were."),
    "saved": ("Sparat: {label}.", "Saved: {label}."),
    "removed": (
        "Kortet {label} är borttaget. Tryck ”Ångra” om det blev fel.",
        "The card {label} is removed. Press “Undo” if that was a mistake.",
    ),
    "place_card": ("Lägg kortet på läsaren", "Put the card on the reader"),
    "place_card_hint": (
        "Kortet läses av direkt. Ett kort som redan är programmerat öppnas så att du kan ändra det.",
        "The card is read at once. A card that is already set up opens so you can change it.",
    ),
    "cancel": ("Avbryt", "Cancel"),
    "back": ("Tillbaka", "Back"),
    "what_does_it_do": ("Vad ska kortet göra?", "What should the card do?"),
    "card_id": ("Kortets nummer: {uid}", "Card number: {uid}"),
    "kind_call": ("Ring någon", "Call someone"),
    "kind_svt": ("Titta på SVT", "Watch SVT"),
    "kind_photos": ("Visa foton", "Show photos"),
    "kind_web": ("Öppna en webbsida", "Open a web page"),
    "kind_command": ("Avancerat: starta ett program", "Advanced: start a program"),
    "kind_carer": ("Kontaktpersonens kort", "Carer card"),
    "change_kind": ("Byt vad kortet gör", "Change what the card does"),
    "field_label": ("Namn på kortet", "Name on the card"),
    "field_colour": ("Färg", "Colour"),
    "colour_blue": ("Blå", "Blue"),
    "colour_green": ("Grön", "Green"),
    "colour_red": ("Röd", "Red"),
    "colour_purple": ("Lila", "Purple"),
    "colour_orange": ("Orange", "Orange"),
    "colour_yellow": ("Gul", "Yellow"),
    "colour_black": ("Svart", "Black"),
    "field_picture": ("Bild", "Picture"),
    "field_provider": ("Tjänst", "Service"),
    "field_server": ("Jitsi-server (börjar med https://)", "Jitsi server (starts with https://)"),
    "hint_server": (
        "Ifylld från inställningarna; ändra bara om ni har en egen.",
        "Filled in from the settings; change it only if you have your own.",
    ),
    "field_room": ("Rummets namn", "Room name"),
    "hint_room": (
        "Ett namn ni hittar på, t.ex. familjen-berg; den ni ringer använder samma namn.",
        "A name you make up, e.g. family-berg; the person you call uses the same name.",
    ),
    "provider_skype_retired": ("Skype (finns inte längre)", "Skype (closed)"),
    "skype_retired": (
        "Skype har stängts och kortet fungerar inte. Välj Jitsi eller Teams.",
        "Skype has closed and this card does not work. Choose Jitsi or Teams.",
    ),
    "field_display_name": ("Namnet de andra ser i samtalet", "The name the others see in the call"),
    "field_user": ("Vem ska ringas (e-post i Teams)", "Who to call (Teams e-mail)"),
    "field_skype_name": ("Skype-namn", "Skype name"),
    "field_channel": ("Kanal", "Channel"),
    "field_program": (
        "… eller ett program (delen efter svtplay.se, t.ex. /rapport)",
        "… or a programme (the part after svtplay.se, e.g. /rapport)",
    ),
    "field_folder": ("Mappen med fotona", "The folder with the photos"),
    "field_album_url": (
        "Webbadress till albumet om mappen saknas (valfritt)",
        "Web address of the album if the folder is missing (optional)",
    ),
    "field_url": ("Webbadress (börjar med https://)", "Web address (starts with https://)"),
    "field_argv": ("Programmet och dess argument", "The program and its arguments"),
    "choose_picture": ("Välj bild …", "Choose picture …"),
    "no_picture": ("Ingen bild", "No picture"),
    "remove_picture": ("Ta bort bilden", "Remove picture"),
    "choose_folder": ("Välj mapp …", "Choose folder …"),
    "choose": ("Välj", "Choose"),
    "choose_picture_title": ("Välj en bild", "Choose a picture"),
    "choose_folder_title": ("Välj mappen med fotona", "Choose the folder with the photos"),
    "place_pictures": ("Bilder", "Pictures"),
    "place_cards": ("Kortens mapp", "The cards' folder"),
    "use_this_folder": ("Välj den här mappen", "Choose this folder"),
    "use_this_folder_n": ("Välj den här mappen ({count} foton)", "Choose this folder ({count} photos)"),
    "use_this_folder_one": ("Välj den här mappen ({count} foto)", "Choose this folder ({count} photo)"),
    "in_folder": ("Mapp: {path}", "Folder: {path}"),
    "no_pictures_here": (
        "Här finns inga bilder. Öppna en mapp eller tryck ”Tillbaka”.",
        "No pictures here. Open a folder or press “Back”.",
    ),
    "folder_unreadable": ("Mappen kan inte öppnas: {reason}", "The folder cannot be opened: {reason}"),
    "left_out": (
        "{count} filer till visas inte; lägg bilderna i en mindre mapp.",
        "{count} more files are not shown; put the pictures in a smaller folder.",
    ),
    "picture_unreadable": ("Kan inte visas", "Cannot be shown"),
    "picture_too_big": ("För stor bild", "Picture too large"),
    "no_channel": ("Ingen kanal", "No channel"),
    "save": ("Spara", "Save"),
    "delete_card": ("Ta bort kortet", "Remove the card"),
    "preview": ("Så ser kortet ut", "How the card looks"),
    "fix_fields": ("Kortet är inte sparat. Rätta det som står i rött.", "The card is not saved. Fix what is written in red."),
    "choose_kind_first": ("Välj vad kortet ska göra.", "Choose what the card should do."),
    "reader_connected": ("Kortläsaren är redo", "The card reader is ready"),
    "reader_searching": ("Letar efter kortläsaren …", "Looking for the card reader …"),
    "reader_lost": ("Kortläsaren hittas inte", "The card reader cannot be found"),
    "reader_starting": ("Kortläsaren startar …", "The card reader is starting …"),
    "reader_other": ("Kortläsaren: {state}", "The card reader: {state}"),
    "bundle_note": ("Kortsamlingen {name} – ändringar sparas i filen.", "Card set {name} – changes are saved in the file."),
    "quote_unpaired": ("Ett citattecken saknar sin partner.", "A quote mark has no partner."),
    "file_problem": ("Korten kunde inte läsas: {reason}", "The cards could not be read: {reason}"),
    "save_failed": ("Kunde inte spara: {reason}", "Could not save: {reason}"),
    "card_set_busy": (
        "Ett annat program ändrar korten just nu. Inget är förlorat: tryck igen om en stund.",
        "Another program is changing the cards right now. Nothing is lost: press again in a moment.",
    ),
    "bridge_starting": ("Klick-bryggan startas för läsaren …", "Starting the Klick bridge for the reader …"),
    "bridge_failed": (
        "Klick-bryggan startade inte, så läsaren kan inte användas. {reason}",
        "The Klick bridge did not start, so the reader cannot be used. {reason}",
    ),
    "bridge_gone": (
        "Klick-bryggan stannade; väntar på att den kommer tillbaka.",
        "The Klick bridge stopped; waiting for it to come back.",
    ),
    "bridge_again": ("Klick-bryggan stannade; den startas igen …", "The Klick bridge stopped; starting it again …"),
    # Why the bridge did not start: klick.bridge_child.START_PROBLEMS, each as why_<code>.
    "why_socket": (
        "Den kan inte öppna läsarens anslutning i {where}. Be den som installerade Klick att ändra paths.socket "
        "i inställningarna.",
        "It cannot open the reader's connection at {where}. Ask whoever installed Klick to change paths.socket in the settings.",
    ),
    "why_already_running": (
        "En annan Klick-brygga har redan läsaren ({where}) men svarar inte. Starta om datorn.",
        "Another Klick bridge already has the reader ({where}) but does not answer. Restart the computer.",
    ),
    "why_settings": (
        "Inställningsfilen {where} har fel. Be den som installerade Klick att rätta den.",
        "The settings file {where} has mistakes. Ask whoever installed Klick to fix it.",
    ),
    "why_timeout": (
        "Den svarade inte i tid. Stäng fönstret och öppna det igen.",
        "It did not answer in time. Close the window and open it again.",
    ),
    "why_cannot_run": (
        "Datorn kunde inte starta den. Be den som installerade Klick om hjälp.",
        "The computer could not start it. Ask whoever installed Klick for help.",
    ),
    "send_to_tablet": ("Skicka till surfplattan …", "Send to the tablet …"),
    "send_target": ("Surfplattans namn (eller en grupp av surfplattor)", "The tablet's name (or a group of tablets)"),
    "send": ("Skicka", "Send"),
    "sending": ("Skickar korten till {target} …", "Sending the cards to {target} …"),
    "sent_applied": ("Klart: surfplattan {device} använder nu de här korten.", "Done: the tablet {device} now uses these cards."),
    "sent_pending": (
        "Skickat till {device}. Surfplattan är avstängd just nu och får korten när den startar.",
        "Sent to {device}. The tablet is off just now and gets the cards when it starts.",
    ),
    "sent_no_answer": (
        "Skickat till {device}, men surfplattan har inte svarat ännu. Titta igen om en stund.",
        "Sent to {device}, but the tablet has not answered yet. Look again in a while.",
    ),
    "sent_refused": (
        "Surfplattan {device} tog inte emot korten: {reason}",
        "The tablet {device} did not take the cards: {reason}",
    ),
    "send_failed": ("Kunde inte skicka: {reason}", "Could not send: {reason}"),
}

_PROBLEMS_SV: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\w+ must not be empty$"), "Fyll i det här."),
    (re.compile(r"\w+ must be a web address starting with https://"), "Skriv en webbadress som börjar med https://"),
    (re.compile(r"room may hold only"), "Rummets namn får bara ha a–z, siffror, punkt, _ och - (inga mellanslag, inga å, ä, ö)."),
    (re.compile(r"label is (\d+) letters long; keep it to (\d+)"), r"Namnet är \1 tecken; högst \2 får plats på kortet."),
    (re.compile(r"svt_play needs either a channel"), "Välj en kanal eller skriv ett program – inte båda."),
    (re.compile(r"channel must be one of"), "Välj en av kanalerna."),
    (
        re.compile(r"program must be the part of the SVT Play address"),
        "Skriv delen av SVT Play-adressen efter svtplay.se, till exempel /rapport.",
    ),
    (re.compile(r"photo_album needs a folder"), "Välj mappen med fotona."),
    (re.compile(r"the photo folder (.+) does not exist yet"), r"Mappen \1 finns inte ännu."),
    (re.compile(r"the picture (.+) does not exist"), r"Bilden \1 finns inte; kortet visar bara färg och namn."),
    (re.compile(r"argv must be"), "Skriv programmet först, sedan dess argument."),
    (re.compile(r"command needs argv"), "Skriv programmet först, sedan dess argument."),
    (re.compile(r"holds an invisible control character"), "Texten har ett osynligt tecken; skriv om den."),
    (re.compile(r"this card has no action"), "Välj vad kortet ska göra."),
    (re.compile(r"is already set up on line"), "Det här kortet är redan programmerat."),
    (re.compile(r"^colour "), "Välj en av färgerna."),
    (re.compile(r"\w+ must be text\b"), "Skriv text här."),
    (re.compile(r"label holds only invisible characters"), "Namnet har bara osynliga tecken; skriv ett ord."),
    (
        re.compile(r"holds a hidden character that turns text around"),
        "Texten har ett dolt tecken som vänder på texten; skriv om den.",
    ),
    (
        re.compile(r"must not hold a user name or password"),
        "Adressen får inte ha ett användarnamn eller lösenord (delen före @).",
    ),
    (
        re.compile(r"is not one of the call servers in calls.allowed_servers"),
        "Den här servern är inte godkänd för samtal på surfplattan. Be den som installerade Klick att lägga till den "
        "i inställningarna (calls.allowed_servers).",
    ),
    (re.compile(r"the picture (.+) is a link to another file"), r"Bilden \1 är en länk till en annan fil; välj själva bilden."),
    (
        re.compile(r"the picture (.+) is outside the card file's folder"),
        r"Bilden \1 ligger utanför kortens mapp; lägg bilderna i kortens mapp, så följer de med när mappen kopieras.",
    ),
]


#: What the reader drivers (firmware_bridge) say about the reader, in Swedish. Any other sentence
#: stays as the driver wrote it.
_READER_SV: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Looking for the card reader at (.+)\.$"), r"Letar efter kortläsaren på \1."),
    (
        re.compile(r"^No (?:card|NFC) reader found at (.+)\. Check that it is plugged in\.$"),
        r"Ingen kortläsare hittades på \1. Kontrollera att den sitter i.",
    ),
    (
        re.compile(r"^No keyboard-style card reader found \(any input device named like a card reader\)\. "),
        "Ingen kortläsare hittades. Kontrollera att den sitter i.",
    ),
    (
        re.compile(r"^No keyboard-style card reader found \((.+)\)\. Check that it is plugged in\.$"),
        r"Ingen kortläsare hittades på \1. Kontrollera att den sitter i.",
    ),
    (
        re.compile(r"^The (?:card|NFC) reader was unplugged or stopped working\.$"),
        "Kortläsaren drogs ur eller slutade fungera.",
    ),
    (
        re.compile(r"^The card reader (.+) is in use by another program \(.*\)\.$"),
        r"Kortläsaren \1 används av ett annat program.",
    ),
    (
        re.compile(r"^The reader program failed; trying again shortly\.$"),
        "Läsarprogrammet slutade fungera; det startas igen strax.",
    ),
]


def words(key: str, locale: str = "sv", **fields: object) -> str:
    """The text for ``key``; Swedish unless the locale is English."""
    sv, en = WORDS[key]
    text = en if locale == "en" else sv
    return text.format(**fields) if fields else text


def problem_words(message: str, locale: str = "sv") -> str:
    """A registry message in the carer's language: the English as is, or its Swedish version."""
    if locale == "en":
        return message[:1].upper() + message[1:]
    for pattern, swedish in _PROBLEMS_SV:
        match = pattern.search(message)
        if match:
            return match.expand(swedish)
    return message[:1].upper() + message[1:]


def bridge_words(code: str | None, where: str, sentence: str, locale: str = "sv") -> str:
    """Why the window's own bridge did not start, in the window's language: our words for a reason
    with a code (:data:`klick.bridge_child.START_PROBLEMS`), the bridge's own sentence otherwise."""
    key = f"why_{code}"
    if code is not None and key in WORDS:
        return words(key, locale, where=where)
    return sentence


def reader_words(detail: str, locale: str = "sv") -> str:
    """What a reader driver said about the reader, in the carer's language (English as it is)."""
    if locale == "en":
        return detail
    for pattern, swedish in _READER_SV:
        match = pattern.search(detail)
        if match:
            return match.expand(swedish)
    return detail
