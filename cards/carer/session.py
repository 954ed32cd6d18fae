"""One editing session over a card file (or a card bundle): save, remove, and one step of undo.

Undo restores the card file's previous *bytes*, not a re-written copy, so whatever the carer had
(comments included) comes back exactly. A bundle is unpacked into a private folder, edited there
like any card file, and packed back into the bundle file after every change, so closing the
window at any moment leaves a bundle that unpacks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cards.carer.model import CardForm, Checked, check_form
from cards.registry import CardSetBusy, Registry, RegistryError, card_file_lock, change_card_set, load_registry
from klick.atomic import write_atomic

__all__ = ["EditorSession", "SessionError", "SessionBusy", "LOCK_WAIT_S"]

#: How long the window waits for another program changing the same cards (it cannot answer meanwhile).
LOCK_WAIT_S = 3.0


class SessionError(Exception):
    """The card file or bundle cannot be opened or written; the message is one plain sentence."""


class SessionBusy(SessionError):
    """Another program (an unpack, a push, `klick cards add`) is changing the same cards; nothing was changed."""


@dataclass
class _Snapshot:
    content: bytes | None  # None: there was no card file yet
    what: str


class EditorSession:
    """The registry being edited, with its path, its folder (for relative paths), and undo.

    ``bundle``: edit this ``.klick`` file instead; it is created on the first save if missing.
    ``allowed_servers``: the call servers a saved call may name (``calls.allowed_servers``);
    None leaves calls unchecked (a test, or a tool with no settings).
    """

    def __init__(
        self,
        registry_path: str | Path | None = None,
        *,
        bundle: str | Path | None = None,
        allowed_servers: Iterable[str] | None = None,
        lock_wait: float = LOCK_WAIT_S,
    ) -> None:
        self.lock_wait = lock_wait
        self.bundle = Path(bundle) if bundle is not None else None
        self.allowed_servers = tuple(allowed_servers) if allowed_servers is not None else None
        self._workdir: Path | None = None
        if self.bundle is not None:
            self._workdir = Path(tempfile.mkdtemp(prefix="klick-carer-"))
            self.path = self._workdir / "cards.yaml"
            if self.bundle.exists():
                self._unpack()
        elif registry_path is None:
            raise ValueError("a registry path or a bundle is needed")
        else:
            self.path = Path(registry_path)
        self._undo: _Snapshot | None = None
        self.registry = self._load()

    # ---- reading ------------------------------------------------------------------------------

    @property
    def base(self) -> Path:
        return self.path.resolve().parent

    def _load(self) -> Registry:
        try:
            return load_registry(self.path, missing_ok=True)
        except RegistryError as exc:
            first = exc.problems[0] if exc.problems else None
            raise SessionError(str(first) if first else f"{self.path} cannot be used") from None
        except OSError as exc:
            raise SessionError(f"{self.path}: {exc.strerror or exc}") from None

    def _unpack(self) -> None:
        from cards.bundle import BundleError, unpack_bundle

        if self.bundle is None:
            return
        try:
            # The carer's own working copy: what the tablet accepts is checked when it unpacks it.
            unpack_bundle(self.bundle, self.path, check_policy=False)
        except BundleError as exc:
            raise SessionError(str(exc)) from None

    # ---- changing -----------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return self._undo is not None

    def check(self, form: CardForm, locale: str = "sv") -> Checked:
        return check_form(form, self.registry, self.base, locale, allowed_servers=self.allowed_servers)

    def save(self, form: CardForm, locale: str = "sv") -> Checked:
        """Check the form and, if it is fine, save the card; the result says what is wrong if not."""
        checked = self.check(form, locale)
        if not checked.ok or checked.card is None:
            return checked
        card = checked.card
        self._write(lambda registry: registry.with_card(card, replace_existing=True), "save")
        return checked

    def remove(self, uid: str) -> None:
        self._write(lambda registry: registry.without(uid), "remove")

    def undo(self) -> bool:
        """Put the card file back as it was before the last change; False if there is none."""
        snap = self._undo
        if snap is None:
            return False
        try:
            with card_file_lock(self.path, self.lock_wait):
                if snap.content is None:
                    try:
                        os.unlink(self.path)
                    except FileNotFoundError:
                        pass
                else:
                    write_atomic(self.path, snap.content, backup=True)
        except CardSetBusy:
            raise SessionBusy(str(self.path)) from None  # the undo step stays: pressing again works
        self._undo = None
        self.registry = self._load()
        self._repack()
        return True

    def _write(self, change: Callable[[Registry], Registry], what: str) -> None:
        """Change the card file as it is on disk now, under the card set's lock, keeping its bytes for undo."""
        before: list[bytes | None] = []

        def locked(registry: Registry) -> Registry:
            before.append(self.path.read_bytes() if self.path.exists() else None)
            return change(registry)

        try:
            self.registry = change_card_set(self.path, locked, wait=self.lock_wait)
        except CardSetBusy:
            raise SessionBusy(str(self.path)) from None
        except RegistryError as exc:
            raise SessionError("; ".join(p.message for p in exc.problems[:3])) from None
        self._undo = _Snapshot(before[0], what)
        self._repack()

    def _repack(self) -> None:
        if self.bundle is None:
            return
        from cards.bundle import BundleError, pack_bundle

        try:
            pack_bundle(self.registry, self.path, self.bundle)
        except BundleError as exc:
            raise SessionError(str(exc)) from None

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
