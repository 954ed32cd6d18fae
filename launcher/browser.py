"""A page in the kiosk browser, opened and watched by the launcher, so a call that fails is said
in Klick's own calm words.

The launcher starts Chromium on a blank page of its own colour with the DevTools pipe only it
holds (:mod:`launcher.devtools`). Before the page is opened it grants the camera and microphone
to exactly the call server's origin (calls only; ``Browser.setPermission``); every other request
of every site is refused without a prompt (``--deny-permission-prompts``, and the profile's own
settings block camera and microphone by default). Then it opens the page and watches:

* the page failed to load (DNS, TLS, offline, an HTTP error, Chromium's own error page) or did
  not load within ``browser.load_timeout_s``;
* for Jitsi calls, the conference as Jitsi Meet's own redux store tells it (``APP.store``):
  failed before it was joined, waiting for a moderator, or ended by the other side.

:class:`PageWatch` decides from those facts alone (pure, hammered by hypothesis);
:class:`BrowserRun` is the I/O around it, on a thread of its own: the screen never waits for the
browser. A verdict goes to the app once; the app ends the browser and shows its screen.

The Jitsi facts are read from ``APP.store.getState()`` (jitsi-meet's
``react/features/base/app/components/BaseApp.tsx`` sets ``APP.store``), in the slices
``features/base/conference`` (``conference`` once joined; ``error`` from CONFERENCE_FAILED, named
as in lib-jitsi-meet's ``JitsiConferenceErrors``; ``authRequired`` and ``lobbyWaitingForHost``),
``features/authentication`` (``waitForOwnerTimeoutID`` while Jitsi waits for the owner),
``features/base/connection`` (``error`` from CONNECTION_FAILED) and
``features/base/participants`` (``remote``, a Map; entries with ``fakeParticipant`` are screen
shares and the like, not people).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher import actions
from launcher.devtools import DevToolsError, DevToolsPipe, spawn_with_pipe

__all__ = [
    "Verdict",
    "PageWatch",
    "JitsiState",
    "read_jitsi_state",
    "JITSI_PROBE",
    "VERDICTS",
    "TRY_LATER",
    "ENDED",
    "HANGUP_GRACE_S",
    "PROBE_EVERY_S",
    "KIOSK_PREFERENCES",
    "seed_preferences",
    "BrowserRun",
]

log = logging.getLogger("klick.launcher.browser")

#: How a page or call can fail to start when trying again later may help: the one list, which
#: launcher.session (its failure reasons) and launcher.wording ("try again later") import.
TRY_LATER = ("load_failed", "load_timeout", "conference_failed", "waiting_for_moderator")
ENDED = "ended_by_other_side"
#: What a watched page can come to. All but ENDED mean the page or call could not start.
VERDICTS = (*TRY_LATER, ENDED)
#: The other side must stay gone this long before the call counts as ended: a participant
#: whose connection blips leaves and joins again within a second or two.
HANGUP_GRACE_S = 3.0
#: How often Jitsi's state is read once the page has loaded.
PROBE_EVERY_S = 0.5
#: The longest a new browser waits for the previous one (on the same profile) to be gone.
PREVIOUS_STOP_WAIT_S = 5.0
MAX_WORD = 100

#: Read in the page: a small, plain summary of Jitsi Meet's redux state, or null when the page
#: is not (yet) Jitsi Meet. Only reads; never changes anything in the page.
JITSI_PROBE = """(() => {
  const store = window.APP && window.APP.store;
  if (!store || typeof store.getState !== 'function') return null;
  const s = store.getState() || {};
  const conf = s['features/base/conference'] || {};
  const conn = s['features/base/connection'] || {};
  const auth = s['features/authentication'] || {};
  const parts = s['features/base/participants'] || {};
  const name = e => e ? String(e.name || e.message || e).slice(0, 100) : '';
  let remote = 0;
  if (parts.remote && typeof parts.remote.forEach === 'function') {
    parts.remote.forEach(p => { if (p && !p.fakeParticipant) remote += 1; });
  }
  return {
    joined: Boolean(conf.conference),
    error: name(conf.error),
    connectionError: name(conn.error),
    waiting: Boolean(auth.waitForOwnerTimeoutID || conf.authRequired || conf.lobbyWaitingForHost),
    remote: remote
  };
})()"""


@dataclass(frozen=True)
class Verdict:
    """How a page or call came out: ``outcome`` is one of :data:`VERDICTS` (or, when the browser
    itself could not be started, one of the session's failure reasons); ``detail`` is for the log."""

    outcome: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome != ENDED


@dataclass(frozen=True)
class JitsiState:
    joined: bool = False
    error: str = ""
    connection_error: str = ""
    waiting: bool = False
    remote: int = 0


def _word(value: Any) -> str:
    return value[:MAX_WORD] if isinstance(value, str) else ""


def read_jitsi_state(value: Any) -> JitsiState | None:
    """What :data:`JITSI_PROBE` returned, checked (the page could return anything): None when it
    is not a Jitsi state."""
    if not isinstance(value, dict):
        return None
    remote = value.get("remote")
    if isinstance(remote, bool) or not isinstance(remote, (int, float)) or not math.isfinite(remote):
        remote = 0
    return JitsiState(
        joined=value.get("joined") is True,
        error=_word(value.get("error")),
        connection_error=_word(value.get("connectionError")),
        waiting=value.get("waiting") is True,
        remote=max(0, min(int(remote), 100_000)),
    )


@dataclass
class PageWatch:
    """One page's watch: facts in, at most one :class:`Verdict` out, and never another after it.

    ``deadline`` is the monotonic time by which the page must have loaded.
    """

    deadline: float
    jitsi: bool = False
    loaded: bool = False
    verdict: Verdict | None = None
    joined_once: bool = False
    remote_seen: bool = False
    alone_since: float | None = None

    def _decide(self, outcome: str, detail: str = "") -> Verdict | None:
        if self.verdict is not None:
            return None
        self.verdict = Verdict(outcome, _word(detail))
        return self.verdict

    def navigation_failed(self, error_text: str) -> Verdict | None:
        """The page did not open: ``net::ERR_NAME_NOT_RESOLVED`` and the like, or an error page."""
        return self._decide("load_failed", error_text or "error page")

    def page_loaded(self, status: int | None) -> Verdict | None:
        """The page's document is in (DOMContentLoaded), with its HTTP status if known."""
        if self.verdict is not None:
            return None
        if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
            return self._decide("load_failed", f"HTTP {status}")
        self.loaded = True
        return None

    def jitsi_state(self, state: JitsiState | None, now: float) -> Verdict | None:
        if self.verdict is not None or state is None or not self.jitsi:
            return None
        if state.joined:
            self.joined_once = True
        if self.joined_once:
            if not state.joined and state.error == "conference.destroyed":
                return self._decide(ENDED, state.error)  # "end meeting for all"
            if state.joined and state.remote > 0:
                self.remote_seen, self.alone_since = True, None
            elif state.joined and self.remote_seen:
                if self.alone_since is None:
                    self.alone_since = now
            else:
                self.alone_since = None  # not in the conference (Jitsi reconnects): nobody is counted
            return self.tick(now)
        if state.waiting or state.connection_error == "connection.passwordRequired":
            return self._decide("waiting_for_moderator", state.error or state.connection_error or "waiting for the owner")
        if state.error:
            return self._decide("conference_failed", state.error)
        if state.connection_error:
            return self._decide("conference_failed", state.connection_error)
        return None

    def tick(self, now: float) -> Verdict | None:
        if self.verdict is not None:
            return None
        if not self.loaded and now >= self.deadline:
            return self._decide("load_timeout", "the page did not load in time")
        if self.alone_since is not None and now - self.alone_since >= HANGUP_GRACE_S:
            return self._decide(ENDED, "the other side left")
        return None

    def next_deadline(self) -> float | None:
        """The next time :meth:`tick` could decide something, or None."""
        if self.verdict is not None:
            return None
        if not self.loaded:
            return self.deadline
        if self.alone_since is not None:
            return self.alone_since + HANGUP_GRACE_S
        return None


# --- the profile ---------------------------------------------------------------------------------

#: Written into each profile before the browser starts: no "restore pages?" after a crash, no
#: translate bar, no password manager, and camera, microphone, notifications and location
#: blocked for every site by default (the call server is granted its camera over DevTools).
KIOSK_PREFERENCES: dict[str, Any] = {
    "profile": {
        "exit_type": "Normal",
        "exited_cleanly": True,
        "password_manager_enabled": False,
        "default_content_setting_values": {"media_stream_camera": 2, "media_stream_mic": 2, "notifications": 2, "geolocation": 2},
    },
    "credentials_enable_service": False,
    "translate": {"enabled": False},
    "browser": {"has_seen_welcome_page": True},
}
MAX_PREFERENCES_BYTES = 5 * 1024 * 1024


def _merge(into: dict, wanted: dict) -> dict:
    out = dict(into)
    for key, value in wanted.items():
        if isinstance(value, dict):
            out[key] = _merge(out[key] if isinstance(out.get(key), dict) else {}, value)
        else:
            out[key] = value
    return out


def seed_preferences(profile: Path) -> None:
    """Put :data:`KIOSK_PREFERENCES` into the profile (the browser must not be running on it).
    A damaged file is replaced; a problem is logged and the browser starts anyway."""
    from klick.atomic import write_atomic

    path = Path(profile) / "Default" / "Preferences"
    current: dict = {}
    try:
        if path.stat().st_size <= MAX_PREFERENCES_BYTES:
            loaded = json.loads(path.read_bytes())
            current = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError, RecursionError):
        current = {}
    wanted = _merge(current, KIOSK_PREFERENCES)
    if wanted == current and path.is_file():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(wanted, separators=(",", ":")).encode())
    except OSError as exc:
        log.warning("The browser's settings in %s could not be written: %s", path, exc)


# --- the I/O around it -----------------------------------------------------------------------------

_STOP = object()
_GONE = object()


class BrowserRun:
    """One browser page for one card: started, opened, watched and ended on its own thread.

    It looks like :class:`launcher.actions.RunningProgram` to the app (``poll``, ``stop``,
    ``pid``, ``program``). ``on_verdict`` is called once, from this thread, unless the run was
    stopped first; ``on_painted(perf_counter)`` when the page first paints.
    """

    program = "browser"

    def __init__(
        self,
        page: Any,
        *,
        load_timeout: float,
        on_verdict: Callable[[Verdict], None],
        on_painted: Callable[[float], None] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.page = page
        self.load_timeout = float(load_timeout)
        self.on_verdict = on_verdict
        self.on_painted = on_painted
        self.log_file = log_file
        #: The browser's own name and version ("Chrome/156.0.8078.108"), once it answered.
        self.version = ""
        self._lock = threading.Lock()
        self._stopping = False
        self._running: actions.RunningProgram | None = None
        self._pipe: DevToolsPipe | None = None
        self._events: queue.Queue = queue.Queue()
        self._page_target: str | None = None
        self._thread = threading.Thread(target=self._main, name="browser", daemon=True)

    # -- what the app sees ------------------------------------------------------------------------
    def start(self) -> BrowserRun:
        self._thread.start()
        return self

    @property
    def pid(self) -> int | None:
        running = self._running
        return running.pid if running is not None else None

    def poll(self) -> int | None:
        """The browser's exit status once it has ended; None while it runs or is still starting."""
        running = self._running
        return running.poll() if running is not None else None

    def stop(self, grace: float = actions.BROWSER_STOP_GRACE, wait: bool = False) -> None:
        """End the browser's whole process group (its pipe closes first, so it may quit by itself;
        then SIGTERM, and SIGKILL after ``grace``). Never blocks the screen unless ``wait``."""
        with self._lock:
            self._stopping = True
            running, pipe = self._running, self._pipe
        self._events.put(_STOP)
        if pipe is not None:
            pipe.close()
        if running is not None:
            running.stop(grace=grace, wait=wait)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- the thread -----------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            verdict = self._run()
        except Exception as exc:  # nothing the browser does may end the launcher
            log.exception("The browser could not be watched")
            verdict = Verdict("cannot_start", f"{type(exc).__name__}: {exc}")
        if verdict is not None and not self._stopping:
            try:
                self.on_verdict(verdict)
            except Exception:
                log.exception("the browser's verdict could not be handed on")

    def _run(self) -> Verdict | None:
        # A browser still closing on this profile would take the new page into its own window
        # and leave the new process nothing to do.
        actions.wait_for_stops(PREVIOUS_STOP_WAIT_S)
        seed_preferences(self.page.profile)
        with self._lock:
            if self._stopping:
                return None
            try:
                proc, pipe = spawn_with_pipe(self.page.argv, log_file=self.log_file)
            except FileNotFoundError:
                return Verdict("missing", f"{self.page.argv[0]} is not installed")
            except PermissionError:
                return Verdict("not_allowed", f"{self.page.argv[0]} may not be run")
            except OSError as exc:
                return Verdict("cannot_start", f"{self.page.argv[0]}: {exc.strerror or exc}")
            self._running = actions.RunningProgram(proc, self.program)
            self._pipe = pipe
        watch = PageWatch(deadline=time.monotonic() + self.load_timeout, jitsi=self.page.jitsi)
        pipe.start(lambda message: self._events.put(_GONE if message is None else message))
        try:
            session, nav_id = self._open(pipe, watch.deadline)
        except DevToolsError as exc:
            if self._stopping or pipe.closed:
                return None  # it ended; the app sees its exit status
            return Verdict("cannot_start", f"the browser does not answer on its DevTools pipe ({exc})")
        return self._watch(pipe, session, nav_id, watch)

    def _open(self, pipe: DevToolsPipe, deadline: float) -> tuple[str, int]:
        def left() -> float:
            return max(0.5, deadline - time.monotonic())

        self.version = str(pipe.call("Browser.getVersion", timeout=left()).get("product", ""))
        target = None
        while target is None:
            infos = pipe.call("Target.getTargets", timeout=left()).get("targetInfos", [])
            target = next((t.get("targetId") for t in infos if isinstance(t, dict) and t.get("type") == "page"), None)
            if target is None:
                if time.monotonic() > deadline:
                    raise DevToolsError("the browser opened no page")
                time.sleep(0.05)
        session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True}, timeout=left()).get("sessionId")
        if not isinstance(session, str):
            raise DevToolsError("no session for the page")
        origin = self.page.camera_origin
        if origin:
            for name in ("camera", "microphone"):
                pipe.call(
                    "Browser.setPermission",
                    {"permission": {"name": name}, "setting": "granted", "origin": origin},
                    timeout=left(),
                )
        pipe.call("Page.enable", session=session, timeout=left())
        pipe.call("Page.setLifecycleEventsEnabled", {"enabled": True}, session=session, timeout=left())
        # Any other tab or window (a link that opens one, a stray shortcut) is closed at once: the
        # resident stays on the card's page, never in a tab with no way back.
        self._page_target = target
        pipe.call("Target.setDiscoverTargets", {"discover": True}, timeout=left())
        return session, pipe.send("Page.navigate", {"url": self.page.url}, session=session)

    def _watch(self, pipe: DevToolsPipe, session: str, nav_id: int, watch: PageWatch) -> Verdict | None:
        loader = None  # the navigation's own document, once the browser has it
        painted = False
        next_probe = 0.0
        while True:
            now = time.monotonic()
            if verdict := watch.tick(now):
                return verdict
            wake = [t for t in (watch.next_deadline(), next_probe if watch.loaded and watch.jitsi else None) if t]
            timeout = max(0.0, min(wake) - now) if wake else 1.0
            try:
                item = self._events.get(timeout=min(timeout, 1.0))
            except queue.Empty:
                item = None
            if item is _STOP or item is _GONE or self._stopping:
                return None
            verdict = None
            if isinstance(item, dict):
                params = _dict(item.get("params"))
                method = item.get("method")
                if item.get("id") == nav_id:
                    result = _dict(item.get("result"))
                    if "error" in item:
                        verdict = watch.navigation_failed(str(item.get("error"))[:MAX_WORD])
                    elif result.get("errorText"):
                        verdict = watch.navigation_failed(str(result["errorText"]))
                    else:
                        loader = result.get("loaderId") or ""
                elif method == "Target.targetCreated":
                    info = _dict(params.get("targetInfo"))
                    if info.get("type") == "page" and info.get("targetId") not in (None, self._page_target):
                        log.info("The browser opened another tab or window; it is closed.")
                        pipe.send("Target.closeTarget", {"targetId": info["targetId"]})
                elif item.get("sessionId") != session:
                    pass
                elif method == "Page.frameNavigated" and loader is not None:
                    # Before the navigation's answer, its own errorText says more than this.
                    frame = _dict(params.get("frame"))
                    if not frame.get("parentId") and str(frame.get("url", "")).startswith("chrome-error:"):
                        verdict = watch.navigation_failed("error page")
                elif method == "Page.domContentEventFired" and loader is not None and not watch.loaded:
                    verdict = watch.page_loaded(self._status(pipe, session))
                elif method == "Page.lifecycleEvent" and loader is not None and not painted:
                    if params.get("name") == "firstContentfulPaint":
                        painted = True
                        if self.on_painted is not None:
                            self.on_painted(time.perf_counter())
            if verdict is None and watch.jitsi and watch.loaded and time.monotonic() >= next_probe:
                next_probe = time.monotonic() + PROBE_EVERY_S
                verdict = watch.jitsi_state(read_jitsi_state(self._evaluate(pipe, session, JITSI_PROBE)), time.monotonic())
            if verdict is not None:
                return verdict

    def _evaluate(self, pipe: DevToolsPipe, session: str, expression: str) -> Any:
        try:
            answer = pipe.call(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session, timeout=2.0
            )
        except DevToolsError:
            return None
        result = answer.get("result")
        return result.get("value") if isinstance(result, dict) else None

    def _status(self, pipe: DevToolsPipe, session: str) -> int | None:
        value = self._evaluate(pipe, session, "(performance.getEntriesByType('navigation')[0] || {}).responseStatus || 0")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _dict(value: object) -> dict:
    """A DevTools message's part that should be an object, or an empty one if it is not."""
    return value if isinstance(value, dict) else {}
