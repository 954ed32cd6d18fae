"""The tablet's side of a push: check it, swap it in whole, remember it, say what happened.

A push is taken only when every one of these holds, in this order, and otherwise refused in plain
words (reported in ``klick/D/applied``) with the tablet's files untouched:

1. it is a well-formed envelope (:mod:`fleet.envelope`), no larger than the one size rule;
2. it is meant for this tablet and signed by the municipality's key (``fleet.signing_key``);
3. its version is newer than the one in force (a replay of an older push is refused);
4. its contents pass the very checks of ``klick cards unpack`` (the bundle's names, sizes,
   pictures, card file, command cards, calls only to ``calls.allowed_servers``), or for a
   questionnaire, the launcher's own check.

The card set is then swapped in by :func:`cards.bundle.unpack_bundle` (new pictures in a folder of
their own, then ``cards.yaml`` replaced atomically, the old one kept as ``cards.yaml.bak``), so at
every instant the card file names a complete set; the questionnaire by
:func:`klick.atomic.write_atomic`. The launcher picks either up as it picks up any edited file.

What is in force is remembered in a small file of its own, ``fleet-applied.json`` in the data
folder, written atomically after the swap (not in usage.db, which may be missing, damaged or
withdrawn while the card set must still be protected). A kill between the swap and that write
means the same push is applied once more when it is delivered again: the same card set.

The broker delivers a retained push again on every reconnect. The push in force is recognised by
its version and checksum and passes silently; a refused one by its digest (with the settings it was
judged by), so the same refusal is reported once, not on every reconnect.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet import envelope, wire
from fleet.signing import public_key_from_text
from klick.atomic import write_atomic
from klick.usage_file import iso

__all__ = ["ApplySettings", "Outcome", "Applier", "STATE_FILE"]

log = logging.getLogger("klick.fleet")

STATE_FILE = "fleet-applied.json"
_TEMP_PREFIX = ".fleet-push-"
#: A refusal carries at most this many problems, each at most this long, so ``applied`` stays small.
MAX_PROBLEMS, MAX_PROBLEM_CHARS = 12, 400


def _check_state(state: Any) -> None:
    """Raise ValueError unless ``state`` has the shape :meth:`Applier._save` writes, every part of it.

    The daemon reads this file on every connection (to say ``applied``): a part of the wrong type
    would end it there, and systemd would start it again into the same file, for ever.
    """
    if not isinstance(state, dict) or state.get("v") != 1:
        raise ValueError("not a state of this version")
    for kind in envelope.KINDS:
        entry = state.get(kind)
        if entry is None:
            continue
        if not isinstance(entry, dict) or type(entry.get("version")) is not int:
            raise ValueError(f"a wrong {kind} entry")
        if not all(isinstance(entry.get(f), str | None) for f in ("sha256", "name", "at")):
            raise ValueError(f"a wrong {kind} entry")
    refused = state.get("refused", {})
    if not isinstance(refused, dict):
        raise ValueError("a wrong refused entry")
    for kind in envelope.KINDS:
        entry = refused.get(kind)
        if entry is None:
            continue
        problems = entry.get("problems") if isinstance(entry, dict) else None
        if (
            not isinstance(entry, dict)
            or type(entry.get("version")) not in (int, type(None))
            or not all(isinstance(entry.get(f), str | None) for f in ("at", "digest"))
            or not isinstance(problems, list)
            or not all(isinstance(p, str) for p in problems)
        ):
            raise ValueError(f"a wrong refused {kind} entry")
    last = state.get("last")
    if last is not None and (
        not isinstance(last, dict)
        or last.get("kind") not in envelope.KINDS
        or type(last.get("version")) not in (int, type(None))
        or type(last.get("ok")) is not bool
        or not isinstance(last.get("at"), str | None)
    ):
        raise ValueError("a wrong last entry")


class _Trouble(Exception):
    """The tablet could not apply a push for a reason of its own (disk, permissions)."""


@dataclass(frozen=True)
class ApplySettings:
    device: str
    #: The data folder: the state file and the temporary copy of a push live here.
    home: Path
    cards_file: Path
    #: Where the launcher reads the questionnaire; None when that is the shipped default (in the
    #: program's own folder), which a push never overwrites.
    questionnaire_file: Path | None
    allowed_servers: tuple[str, ...]
    #: The municipality's public key (``fleet.signing_key``); empty: this tablet takes no pushes.
    signing_key: str


@dataclass(frozen=True)
class Outcome:
    kind: str
    version: int | None
    ok: bool
    problems: tuple[str, ...] = ()


class Applier:
    def __init__(self, settings: ApplySettings, *, clock: Callable[[], float] = time.time) -> None:
        self.s = settings
        self.clock = clock
        self.state_path = settings.home / STATE_FILE
        #: Why the state file cannot be trusted (pushes are refused until an installer looks), or None.
        self.damaged: str | None = None
        self.state: dict[str, Any] = self._load()
        #: The digest of the last message handled per kind in this run: a redelivery passes silently.
        self._seen: dict[str, str] = {}
        # A refusal is remembered with the settings it was judged by: once the installer changes
        # them (adds the signing key, allows a call server), the same push is judged again.
        judged_by = [
            settings.signing_key,
            list(settings.allowed_servers),
            str(settings.cards_file),
            str(settings.questionnaire_file),
        ]
        self._mark = json.dumps(judged_by).encode("utf-8") + b"\n"
        self._remove_leftovers()

    # -- the record of what is in force ---------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return {"v": 1}
        except OSError as exc:
            self.damaged = f"{self.state_path} cannot be read ({exc.strerror or exc})"
            return {"v": 1}
        try:
            state = json.loads(raw[:1_000_000].decode("utf-8"), parse_constant=wire.no_constant)
            _check_state(state)
        except (UnicodeDecodeError, ValueError, RecursionError):
            self.damaged = (
                f"{self.state_path} (the record of pushed versions) is damaged; delete it to take pushes again "
                "(the next push is then taken whatever its version)"
            )
            return {"v": 1}
        return state

    def _save(self) -> None:
        try:
            write_atomic(self.state_path, json.dumps(self.state, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            log.error("klick fleet: the record of pushed versions %s could not be written: %s", self.state_path, exc)

    def in_force(self, kind: str) -> dict[str, Any] | None:
        entry = self.state.get(kind)
        return entry if isinstance(entry, dict) else None

    def message(self) -> dict[str, Any] | None:
        """The retained ``applied`` message: what is in force, the last refusal of each kind, the
        last outcome. Made from the state alone, so saying it again says the same bytes."""
        if not any(k in self.state for k in (*envelope.KINDS, "last", "refused")):
            return None
        out: dict[str, Any] = {"v": 1, "device": self.s.device}
        for kind in envelope.KINDS:
            entry = self.in_force(kind)
            if entry is not None:
                out[kind] = {k: entry.get(k) for k in ("version", "at", "name")}
        refused = wire.mapping(self.state.get("refused"))
        said = {
            k: {f: wire.mapping(refused[k]).get(f) for f in ("version", "at", "problems")} for k in envelope.KINDS if k in refused
        }
        if said:
            out["refused"] = said
        last = self.state.get("last")
        if isinstance(last, dict):
            out["last"] = {f: last.get(f) for f in ("kind", "version", "ok", "at")}
        return out

    # -- a push arrives -------------------------------------------------------------------------
    def receive(self, kind: str, payload: bytes) -> Outcome | None:
        """Handle the message on ``set/<kind>``: the outcome, or None when there is nothing new."""
        if not payload:
            return None  # the office cleared the retained push: nothing to do
        digest = hashlib.sha256(self._mark + payload).hexdigest()
        if self._seen.get(kind) == digest:
            return None
        refused = wire.mapping(self.state.get("refused")).get(kind)
        if isinstance(refused, dict) and refused.get("digest") == digest:
            self._seen[kind] = digest
            return None
        self._seen[kind] = digest
        try:
            push = envelope.open_envelope(payload)
        except envelope.BadPush as exc:
            return self._refuse(kind, None, [str(exc)], digest)
        if push.kind != kind:
            return self._refuse(kind, push.version, [f"it is a {push.kind} push sent on the {kind} topic"], digest)
        if push.device != self.s.device:
            return self._refuse(kind, push.version, [f"it was signed for the tablet {push.device}, not this one"], digest)
        current = self.in_force(kind)
        if current is not None and current.get("version") == push.version and current.get("sha256") == push.sha256:
            return None  # in force already: the broker delivered it again
        if not self.s.signing_key:
            return self._refuse(
                kind, push.version, ["this tablet takes no pushes: its klick.yaml has no fleet.signing_key"], digest
            )
        try:
            public = public_key_from_text(self.s.signing_key)
        except ValueError as exc:
            return self._refuse(kind, push.version, [f"fleet.signing_key in klick.yaml {exc}"], digest)
        if not envelope.signed_by(push, public):
            return self._refuse(
                kind, push.version, ["it is not signed by the municipality's key (fleet.signing_key in klick.yaml)"], digest
            )
        if current is not None and push.version < current["version"]:
            return self._refuse(
                kind,
                push.version,
                [f"it is version {push.version}, older than version {current['version']} in force (a replayed push)"],
                digest,
            )
        if current is not None and push.version == current["version"]:
            return self._refuse(
                kind,
                push.version,
                [f"version {push.version} is in force already, with other contents (a replayed or repeated push)"],
                digest,
            )
        if self.damaged:
            return self._refuse(kind, push.version, [self.damaged], digest)
        log.info("klick fleet: applying the pushed %s version %d (%s, %d bytes)", kind, push.version, push.name, push.size)
        try:
            problems = self._apply(push)
        except _Trouble as exc:
            # The tablet's own trouble (a full disk, a file it may not write), not the push's: not
            # remembered, so the push is tried again when the broker hands it over again (on the
            # next connection, or when `klick fleet` starts again).
            self._seen.pop(kind, None)
            return self._refuse(kind, push.version, [str(exc)], None)
        except Exception as exc:  # data must never end the daemon: a push that breaks something is refused
            log.exception("klick fleet: the pushed %s could not be applied", kind)
            problems = [f"it could not be applied ({type(exc).__name__}: {exc})"]
        if problems:
            return self._refuse(kind, push.version, problems, digest)
        now = iso(self.clock())
        self.state[kind] = {"version": push.version, "sha256": push.sha256, "name": push.name, "at": now}
        self.state["last"] = {"kind": kind, "version": push.version, "ok": True, "at": now}
        self._save()
        log.info("klick fleet: the pushed %s version %d is in force", kind, push.version)
        return Outcome(kind, push.version, True)

    def _refuse(self, kind: str, version: int | None, problems: list[str], digest: str | None) -> Outcome:
        shown = tuple(" ".join(str(p).split())[:MAX_PROBLEM_CHARS] for p in problems[:MAX_PROBLEMS])
        if len(problems) > MAX_PROBLEMS:
            shown += (f"and {len(problems) - MAX_PROBLEMS} more problems",)
        now = iso(self.clock())
        refused = wire.mapping(self.state.get("refused"))
        refused[kind] = {"version": version, "at": now, "problems": list(shown), "digest": digest}  # None: try again
        self.state["refused"] = refused
        self.state["last"] = {"kind": kind, "version": version, "ok": False, "at": now}
        if not self.damaged:
            self._save()
        log.warning("klick fleet: refused a pushed %s (version %s): %s", kind, version, "; ".join(shown))
        return Outcome(kind, version, False, shown)

    # -- swapping in ----------------------------------------------------------------------------
    def _apply(self, push: envelope.Envelope) -> list[str]:
        try:
            folder = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=self.s.home))
            (folder / "body").write_bytes(push.body)
        except OSError as exc:
            raise _Trouble(f"the push could not be stored for checking in {self.s.home} ({exc.strerror or exc})") from None
        try:
            if push.kind == "cards":
                return self._apply_cards(push, folder)
            return self._apply_questionnaire(push, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _apply_cards(self, push: envelope.Envelope, folder: Path) -> list[str]:
        from cards.bundle import BundleError, NoRoom, unpack_bundle

        bundle = folder / envelope.safe_name(push.name, ".klick")
        os.rename(folder / "body", bundle)
        try:
            result = unpack_bundle(
                bundle, self.s.cards_file, allowed_servers=self.s.allowed_servers, allow_commands=False, check_policy=True
            )
        except NoRoom as exc:  # a full disk is this tablet's state, not the push's fault
            raise _Trouble(str(exc)) from None
        except BundleError as exc:
            return [str(p) for p in exc.problems] or [str(exc)]
        except OSError as exc:
            raise _Trouble(f"the card set could not be written ({exc.strerror or exc})") from None
        log.info("klick fleet: %d cards and %d files from %s", result.cards, result.files, push.name)
        return []

    def _apply_questionnaire(self, push: envelope.Envelope, folder: Path) -> list[str]:
        from klick.problems import errors_in
        from klick.questionnaire import check_questionnaire

        if self.s.questionnaire_file is None:
            return [
                "this tablet reads the questionnaire shipped with Klick, which a push never replaces; set "
                "paths.questionnaire in klick.yaml to a file in the data folder (e.g. /var/lib/klick/questionnaire.yaml)"
            ]
        copy = folder / "questionnaire.yaml"
        os.rename(folder / "body", copy)
        questionnaire, problems = check_questionnaire(copy, display=f"questionnaire.yaml (pushed version {push.version})")
        if questionnaire is None:
            return [str(p) for p in errors_in(problems) or problems] or ["the questionnaire cannot be used"]
        try:
            write_atomic(self.s.questionnaire_file, push.body, backup=True)
        except OSError as exc:
            raise _Trouble(
                f"the questionnaire could not be written to {self.s.questionnaire_file} ({exc.strerror or exc}); "
                "for pushed questionnaires, paths.questionnaire must be in the data folder (e.g. /var/lib/klick)"
            ) from None
        return []

    def _remove_leftovers(self) -> None:
        """A push's temporary copy left by a kill; nothing else starts with this name."""
        try:
            names = [p for p in self.s.home.iterdir() if p.name.startswith(_TEMP_PREFIX)]
        except OSError:
            return
        for path in names:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
