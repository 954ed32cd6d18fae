"""The key combination that closes the launcher (Escape never does: a resident leans on keys)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["KeyCombo", "parse_keys", "KeyComboError"]

MODIFIERS = {"ctrl": "ctrl", "control": "ctrl", "alt": "alt", "shift": "shift", "meta": "meta", "super": "meta", "win": "meta"}


class KeyComboError(ValueError):
    pass


@dataclass(frozen=True)
class KeyCombo:
    modifiers: frozenset
    key: str

    def matches(self, key: str, modifiers: Iterable[str] | None) -> bool:
        """``modifiers`` as Kivy gives them (a list that may also hold capslock/numlock)."""
        held = frozenset(MODIFIERS[m] for m in (modifiers or ()) if m in MODIFIERS)
        return key.lower() == self.key and held == self.modifiers


def parse_keys(text: str) -> KeyCombo:
    """``"ctrl+alt+q"`` → KeyCombo; a combination without a modifier is refused, since a
    single key could be pressed by accident."""
    parts = [p.strip().lower() for p in text.split("+") if p.strip()]
    if len(parts) < 2:
        raise KeyComboError(f"quit_keys {text!r} must hold at least one of ctrl, alt, shift, meta and a key")
    *mods, key = parts
    unknown = [m for m in mods if m not in MODIFIERS]
    if unknown or key in MODIFIERS:
        raise KeyComboError(f"quit_keys {text!r}: write it like ctrl+alt+q")
    return KeyCombo(frozenset(MODIFIERS[m] for m in mods), key)
