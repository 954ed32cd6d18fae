"""Swedish and English words on the screen, from gettext catalogs compiled at start.

The catalogs are plain ``.po`` files in ``launcher/locale`` that a translator can edit. There is
no ``msgfmt`` on the appliance, so :func:`compile_po` turns a catalog into ``.mo`` bytes in
memory (the GNU format ``gettext`` reads); nothing compiled is ever committed or left stale.
"""

from __future__ import annotations

import ast
import gettext
import io
import struct
from functools import cache
from pathlib import Path

__all__ = ["LOCALE_DIR", "LANGUAGES", "parse_po", "compile_mo", "translations", "Words"]

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("sv", "en")
DOMAIN = "klick"


class PoError(ValueError):
    """A catalog line that is not gettext syntax; the message names the line."""


def parse_po(text: str, name: str = "klick.po") -> dict[str, str]:
    """msgid → msgstr for every entry (the header has msgid ""). Fuzzy entries are left out."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None
    fuzzy = next_fuzzy = False

    def flush() -> None:
        nonlocal msgid, msgstr, fuzzy
        if msgid is not None and msgstr is not None and not fuzzy:
            entries["".join(msgid)] = "".join(msgstr)
        msgid = msgstr = None
        fuzzy = False

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                next_fuzzy = True
            continue
        try:
            if line.startswith("msgid "):
                flush()
                fuzzy, next_fuzzy = next_fuzzy, False
                msgid, current = [_unquote(line[6:])], None
                current = msgid
            elif line.startswith("msgstr "):
                msgstr = [_unquote(line[7:])]
                current = msgstr
            elif line.startswith('"') and current is not None:
                current.append(_unquote(line))
            else:
                raise PoError(f"{name}:{number}: not a msgid, msgstr or string line")
        except (ValueError, SyntaxError) as exc:
            raise PoError(f"{name}:{number}: {exc}") from None
    flush()
    return entries


def _unquote(token: str) -> str:
    value = ast.literal_eval(token.strip())
    if not isinstance(value, str):
        raise PoError("expected a quoted string")
    return value


def compile_mo(entries: dict[str, str]) -> bytes:
    """The GNU ``.mo`` bytes for a catalog (little-endian, no hash table; gettext needs none)."""
    keys = sorted(k for k, v in entries.items() if v or k == "")
    ids = [k.encode("utf-8") for k in keys]
    strs = [entries[k].encode("utf-8") for k in keys]
    n = len(keys)
    header_size = 7 * 4
    ids_table = header_size
    strs_table = ids_table + n * 8
    data_start = strs_table + n * 8
    offsets: list[tuple[int, int]] = []
    data = bytearray()
    for blob in ids:
        offsets.append((len(blob), data_start + len(data)))
        data += blob + b"\0"
    str_offsets: list[tuple[int, int]] = []
    for blob in strs:
        str_offsets.append((len(blob), data_start + len(data)))
        data += blob + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, n, ids_table, strs_table, 0, 0)
    out += b"".join(struct.pack("<2I", *o) for o in offsets)
    out += b"".join(struct.pack("<2I", *o) for o in str_offsets)
    return out + bytes(data)


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog for ``sv`` or ``en``; an unknown language falls back to Swedish."""
    if language not in LANGUAGES:
        language = "sv"
    entries = parse_po(catalog_path(language).read_text(encoding="utf-8"), str(catalog_path(language)))
    header = entries.get("", "")
    if "charset" not in header:
        entries[""] = header + "Content-Type: text/plain; charset=UTF-8\n"
    return gettext.GNUTranslations(io.BytesIO(compile_mo(entries)))


class Words:
    """``words("Insert a card")`` in the configured language; ``{name}`` fields filled in."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else "sv"
        self._t = translations(self.language)

    def __call__(self, msgid: str, **fields: object) -> str:
        text = self._t.gettext(msgid)
        return text.format(**fields) if fields else text
