"""What a card's action runs, and running it as a separate process group that can be ended.

Building the command line is pure (:func:`plan`), so the exact browser arguments and call URLs
are unit-tested. A page in the kiosk browser is a :class:`BrowserPage`: the browser starts on a
blank page and the launcher opens the card's address over its own DevTools pipe
(:mod:`launcher.browser`), after granting the camera to the call server, if it is a call. Nothing here ever goes through a shell: a card's URL or argv is data, and a
label like ``Anna; rm -rf ~`` must stay a label. External programs start in their own session
(process group), so ending the action ends the browser *and* every helper it forked.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import quote

from klick.calls import CallServerError, call_origin, server_allowed

__all__ = [
    "External",
    "BrowserPage",
    "BuiltInAlbum",
    "Unrunnable",
    "Plan",
    "plan",
    "jitsi_url",
    "teams_url",
    "skype_uri",
    "call_server",
    "TEAMS_SERVER",
    "svt_url",
    "browser_argv",
    "ActionError",
    "RunningProgram",
    "start_program",
    "finish_stopping",
    "wait_for_stops",
    "BROWSER_STOP_GRACE",
    "album_pictures",
    "PICTURE_SUFFIXES",
    "ACTIONS_LOG",
    "ACTIONS_LOG_MAX",
    "actions_log",
    "announce",
    "chime_wav",
]

log = logging.getLogger("klick.launcher.actions")

#: Seconds between SIGTERM and SIGKILL when an action ends.
STOP_GRACE = 3.0
#: The same for the kiosk browser: Chromium quits in well under a second when its DevTools pipe
#: closes or on SIGTERM, so one that has not is stuck, and card out must end it within 3 s.
BROWSER_STOP_GRACE = 1.5
#: The pictures an album shows, and the folders carer mode offers for one (launcher.carer): one list,
#: so a folder offered is never an empty album.
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
#: Where started programs write what they say (Chromium's stderr among them), in the data folder.
ACTIONS_LOG = "launcher-actions.log"
#: Past this the log is moved aside to ``launcher-actions.log.1`` (the one older copy kept) when
#: the next program starts: a chatty browser does not fill an SD card.
ACTIONS_LOG_MAX = 4 * 1024 * 1024


@dataclass(frozen=True)
class External:
    """A program to start; ``program`` names it in messages (browser, Skype, the card's command)."""

    argv: tuple[str, ...]
    program: str


@dataclass(frozen=True)
class BrowserPage:
    """A page for the kiosk browser, opened and watched by the launcher.

    ``argv`` starts the browser (its profile, the DevTools pipe, a blank page); ``url`` is opened
    over the pipe; ``camera_origin`` is the one origin granted camera and microphone (a call's
    server; None for every other page); ``jitsi`` says the page is a Jitsi Meet room.
    """

    argv: tuple[str, ...]
    url: str
    profile: Path
    camera_origin: str | None = None
    jitsi: bool = False
    program = "browser"


@dataclass(frozen=True)
class BuiltInAlbum:
    folder: Path


@dataclass(frozen=True)
class Unrunnable:
    reason: str
    detail: str = ""


Plan = External | BrowserPage | BuiltInAlbum | Unrunnable


# --- URLs -------------------------------------------------------------------------------------


def jitsi_url(server: str, room: str, display_name: str) -> str:
    """A Jitsi room that skips the pre-join page and shows the resident's name.

    Jitsi reads ``#key=value`` pairs as URL-encoded JSON, so the name is a quoted JSON string,
    then percent-encoded as a whole (a name like ``Åsa "Mormor"`` stays one value).
    """
    import json

    base = server.rstrip("/") + "/" + quote(room, safe="")
    fragment = "config.prejoinConfig.enabled=false"
    if display_name:
        fragment += "&userInfo.displayName=" + quote(json.dumps(display_name, ensure_ascii=False), safe="")
    return f"{base}#{fragment}"


def teams_url(user: str) -> str:
    return "https://teams.microsoft.com/l/call/0/0?users=" + quote(user, safe="@,")


def skype_uri(user: str) -> str:
    return "skype:" + quote(user, safe="@.:_-") + "?call"


def svt_url(channel: str, program: str) -> str:
    if channel:
        return "https://www.svtplay.se/kanaler/" + quote(channel, safe="")
    return "https://www.svtplay.se/" + quote(program.lstrip("/"), safe="/-")


def start_page(colour: str) -> str:
    """The blank page the browser shows before the card's page: the launcher's own colour, so
    nothing flashes white between the card's face and the page."""
    return "data:text/html," + quote(f"<html style='background:{colour}'></html>")


def browser_argv(cfg: Any, *, call: bool = False) -> tuple[str, ...]:
    """The kiosk browser from the settings, with its own profile folder, the launcher's DevTools
    pipe, the configured screen, and a blank start page (the card's page comes over the pipe).

    No site may ever ask for anything (``--deny-permission-prompts``): a prompt would wait for a
    touch no resident can give. Calls use a second profile; the camera and microphone are granted
    in it to the call server alone, over the pipe (:mod:`launcher.browser`), never by a switch.
    """
    from launcher.theme import BG

    d = cfg.display
    profile = Path(cfg.browser.call_profile if call else cfg.browser.profile)
    return (
        *cfg.browser.command,
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
        "--deny-permission-prompts",
        f"--window-position={d.left},{d.top}",
        f"--window-size={d.width},{d.height}",
        start_page(BG),
    )


def browser_page(cfg: Any, url: str, *, camera_origin: str | None = None, jitsi: bool = False) -> BrowserPage:
    call = camera_origin is not None
    profile = Path(cfg.browser.call_profile if call else cfg.browser.profile)
    return BrowserPage(browser_argv(cfg, call=call), url, profile, camera_origin, jitsi)


#: Where a Teams call opens: it gets the camera only if the installer lists this server too.
TEAMS_SERVER = "https://teams.microsoft.com"


def call_server(action: Any) -> str | None:
    """The server a browser call opens (the one that would get the camera), or None for calls
    that do not open in Klick's browser (Skype runs its own program, which asks by itself)."""
    if action.provider == "jitsi":
        return action.server
    if action.provider == "teams":
        return TEAMS_SERVER
    return None


def plan(action: Any, cfg: Any) -> Plan:
    """What to run for a card's action. Pure: looks at nothing but its arguments.

    A browser call goes only to a server in ``calls.allowed_servers``: a card edited by hand, or
    from a card set, that names any other server never gets the camera and microphone.
    """
    kind = getattr(action, "type", None)
    if kind == "video_call":
        server = call_server(action)
        if server is not None:  # a call in Klick's browser: only an allowed server gets the camera
            if not server_allowed(server, cfg.calls.allowed_servers):
                return Unrunnable("server_not_allowed", _origin(server))
            if action.provider == "jitsi":
                url = jitsi_url(action.server, action.room, action.display_name)
                return browser_page(cfg, url, camera_origin=call_origin(server), jitsi=True)
            return browser_page(cfg, teams_url(action.user), camera_origin=call_origin(server))
        if action.provider == "skype":
            # The registry keeps the Skype name in ``name`` (``user`` is Teams').
            return External(("xdg-open", skype_uri(action.name)), "Skype")
        return Unrunnable("cannot_start", f"video call provider {action.provider!r}")
    if kind == "svt_play":
        return browser_page(cfg, svt_url(action.channel, action.program))
    if kind == "web":
        return browser_page(cfg, action.url)
    if kind == "photo_album":
        if action.folder is not None:
            return BuiltInAlbum(Path(action.folder))
        if action.url:
            return browser_page(cfg, action.url)
        return Unrunnable("no_pictures")
    if kind == "command":
        return External(tuple(action.argv), Path(action.argv[0]).name)
    return Unrunnable("no_action")


def _origin(server: str) -> str:
    try:
        return call_origin(server)
    except CallServerError:
        return str(server)[:200]


# --- the photo album's order -----------------------------------------------------------------

_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})(?:-?(\d{2}))?(?!\d)")


def _picture_time(path: Path, mtime: float) -> tuple[str, float, str]:
    """Newest first: a date in the name (phones and the carer write one) wins over mtime,
    because copying a folder to the tablet gives every file the same new mtime."""
    m = _DATE_IN_NAME.search(path.stem)
    if m and 1900 <= int(m.group(1)) <= 2200 and 1 <= int(m.group(2)) <= 12:
        stamp = f"{m.group(1)}-{m.group(2)}-{m.group(3) or '00'}"
    else:
        stamp = time.strftime("%Y-%m-%d", time.localtime(mtime))
    return (stamp, mtime, path.name)


def actions_log(home: Path) -> Path:
    """The programs' log in ``home``, moved aside first when it has grown past ACTIONS_LOG_MAX."""
    path = Path(home) / ACTIONS_LOG
    try:
        if path.stat().st_size > ACTIONS_LOG_MAX:
            os.replace(path, path.with_name(ACTIONS_LOG + ".1"))
    except OSError:
        pass  # none yet, or the folder is read-only: the program is started all the same
    return path


def album_pictures(folder: Path) -> list[Path]:
    """The pictures in an album folder, newest first; an unreadable folder is an empty album."""
    try:
        entries = [p for p in Path(folder).iterdir() if p.suffix.lower() in PICTURE_SUFFIXES and p.is_file()]
        timed = [(_picture_time(p, p.stat().st_mtime), p) for p in entries]
    except OSError:
        return []
    timed.sort(key=lambda item: item[0], reverse=True)
    return [p for _, p in timed]


# --- running ----------------------------------------------------------------------------------


class ActionError(Exception):
    """The program could not be started; ``reason`` is one of session.FAILURE_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ChildProcess(Protocol):
    """What a started program is to :class:`RunningProgram`: ``subprocess.Popen``, or the
    browser's :class:`launcher.devtools.SpawnedProcess`."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class RunningProgram:
    """One started program and its process group."""

    def __init__(self, proc: ChildProcess, program: str) -> None:
        self.proc = proc
        self.program = program
        self._stopping = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self, grace: float = STOP_GRACE, wait: bool = False) -> None:
        """SIGTERM to the whole group, SIGKILL after ``grace`` seconds. Never blocks the screen
        unless ``wait`` is asked for: the waiting happens on a helper thread.

        With ``wait`` it also finishes a stop already under way on a helper thread (that thread
        dies with the launcher): the group is gone when this returns.
        """
        if not self._stopping:
            self._stopping = True
            with _stopping_lock:
                _stopping.add(self)
            self._signal(signal.SIGTERM)
            if not wait:
                threading.Thread(target=self._finish, args=(grace,), name="action-stop", daemon=True).start()
                return
        elif not wait:
            return
        self._finish(grace)

    def _finish(self, grace: float) -> None:
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            log.info("%s did not close within %.0f s; ending it.", self.program, grace)
        # Helpers the program left behind in its group go too, even when the leader has exited.
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) could not be ended.", self.program, self.proc.pid)
        with _stopping_lock:
            _stopping.discard(self)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


#: Programs whose stop is still under way on a helper thread (card out, then the launcher stops).
_stopping: set[RunningProgram] = set()
_stopping_lock = threading.Lock()


def finish_stopping(grace: float = STOP_GRACE) -> None:
    """Wait for every stop still under way, SIGKILL after ``grace``: before the launcher exits,
    since the helper threads doing it die with the process."""
    with _stopping_lock:
        pending = list(_stopping)
    for program in pending:
        program.stop(grace=grace, wait=True)


def wait_for_stops(timeout: float) -> bool:
    """Wait until every stop under way has finished (at most ``timeout`` seconds); True if so.
    For the browser's own thread, before a new browser starts on a profile one may still hold."""
    deadline = time.monotonic() + timeout
    while True:
        with _stopping_lock:
            if not _stopping:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def start_program(argv: tuple[str, ...], program: str, *, log_file: Path | None = None) -> RunningProgram:
    """Start ``argv`` (never through a shell) in a new session; raise :class:`ActionError`."""
    if not argv:
        raise ActionError("no_action", "empty command")
    out: int | IO[bytes] = subprocess.DEVNULL
    handle = None
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handle = open(log_file, "ab")
            out = handle
        except OSError:
            handle = None
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True
        )
    except FileNotFoundError:
        raise ActionError("missing", f"{argv[0]} is not installed") from None
    except PermissionError:
        raise ActionError("not_allowed", f"{argv[0]} may not be run") from None
    except OSError as exc:
        raise ActionError("cannot_start", f"{argv[0]}: {exc.strerror or exc}") from None
    finally:
        if handle is not None:
            handle.close()
    return RunningProgram(proc, program)


def speak(text: str, language: str) -> None:
    """Say ``text`` with espeak-ng if it is installed; silence is fine when it is not."""
    voice = "sv" if language == "sv" else "en"
    try:
        subprocess.Popen(
            ["espeak-ng", "-v", voice, "--", text],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        pass


# --- someone is waiting: a soft chime, then the words -----------------------------------------

CHIME_PLAYERS = (("paplay",), ("aplay", "-q", "-"))  # each reads the sound on its standard input


def chime_wav(rate: int = 22050) -> bytes:
    """A soft two-note chime (E5 then A5, each fading out), 16-bit mono WAV: no sound file to ship."""
    import io
    import math
    import struct
    import wave

    frames = bytearray()
    for freq, start, length in ((659.25, 0.0, 0.9), (880.0, 0.35, 0.9)):
        begin = int(start * rate)
        need = begin + int(length * rate)
        if len(frames) < need * 2:
            frames += bytes(need * 2 - len(frames))
        for i in range(int(length * rate)):
            t = i / rate
            envelope = min(1.0, t / 0.02) * math.exp(-4.0 * t)
            value = 0.22 * envelope * math.sin(2 * math.pi * freq * t)
            at = (begin + i) * 2
            mixed = struct.unpack_from("<h", frames, at)[0] + int(value * 32767)
            struct.pack_into("<h", frames, at, max(-32767, min(32767, mixed)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


def announce(text: str, language: str, *, speech: bool) -> None:
    """A soft chime, then ``text`` aloud if speech is on; beside the screen, silent when no
    sound player (PulseAudio's paplay or ALSA's aplay) is installed."""

    def run() -> None:
        import shutil

        player = next((p for p in CHIME_PLAYERS if shutil.which(p[0])), None)
        if player:
            # Piped, not written to a file: nothing is left behind in /tmp run after run.
            try:
                proc = subprocess.Popen(
                    list(player),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:
                proc = None
            if proc is not None:
                try:
                    proc.communicate(chime_wav(), timeout=3)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
        if speech:
            speak(text, language)

    threading.Thread(target=run, name="announce", daemon=True).start()
