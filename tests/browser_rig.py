"""What the real-browser tests and the browser benchmark share: a headless X display (Xvfb),
local HTTPS call servers that behave like a Jitsi Meet server, and a look at Chromium's
processes and screen.

The call page is a stand-in for Jitsi Meet that exposes the same hooks the launcher reads (a
redux store at ``window.APP.store`` with the slices ``features/base/conference``,
``features/base/connection``, ``features/authentication`` and ``features/base/participants``) and
walks through the states a real conference goes through; the room name's last word picks which:
``joined``, ``failed``, ``waiting``, ``hangup``, ``destroyed``, ``blip``, or ``away`` (after asking
for the camera, the page goes on to the same page on the other origin). The page also asks for
the camera and microphone, and reports to ``POST /report`` what it got, so a test sees exactly
what a call page sees. ``GET /room-size`` answers as jitsi-meet's ``mod_muc_size`` does.

One certificate serves both ``127.0.0.1`` and ``localhost``: two origins on one server, so "the
same browser on another origin" needs no second server. Chromium trusts it through
``--ignore-certificate-errors-spki-list`` (its hash), Python through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.proctree import processes

CHROMIUM = shutil.which("chromium")
XVFB = shutil.which("Xvfb")
#: The call page's colour, to find it on a screenshot.
PAGE = (46, 139, 87)

CALL_PAGE = """<!doctype html><html lang="sv"><meta charset="utf-8"><title>Jitsi Meet</title>
<body style="margin:0;background:rgb(46,139,87);color:#fff;font:64px sans-serif">
<p id="said" style="margin:80px">Samtal</p>
<script>
// A stand-in for Jitsi Meet: the same global (APP.store, a redux store) and the same state slices.
const scenario = decodeURIComponent(location.pathname).split('-').pop();
let state = {
  'features/base/conference': {}, 'features/base/connection': {}, 'features/authentication': {},
  'features/base/participants': {remote: new Map()}
};
const listeners = [];
const set = (slice, patch) => { state = {...state, [slice]: {...state[slice], ...patch}}; listeners.forEach(l => l()); };
window.APP = {store: {getState: () => state, subscribe: l => { listeners.push(l); return () => {}; }, dispatch: a => a}};
// Every other question a page may ask: each must be answered "no" at once, never wait for a touch.
const others = async () => ({
  notifications: await Notification.requestPermission(),
  location: await new Promise(r => navigator.geolocation.getCurrentPosition(() => r('granted'), e => r(e.code === 1 ? 'denied' : 'error')))
});
const report = async body => fetch('/report', {method: 'POST', body: JSON.stringify({...body, asked: await others()})});
navigator.mediaDevices.getUserMedia({video: true, audio: true}).then(stream => {
  return report({origin: location.origin, page: location.pathname, ok: true,
                 tracks: stream.getTracks().map(t => ({kind: t.kind, state: t.readyState, label: t.label}))});
}, e => report({origin: location.origin, page: location.pathname, ok: false, error: e.name})).then(() => {
  // "away": the same page, then the same browser on another origin (localhost, same server).
  if (scenario === 'away' && location.hostname === '127.0.0.1') location.href = location.href.replace('//127.0.0.1', '//localhost');
});
const after = (ms, f) => setTimeout(f, ms);
const conference = {name: 'room'};
const anna = new Map([['a1', {id: 'a1', name: 'Anna'}]]);
const join = () => set('features/base/conference', {conference});
if (scenario === 'failed') after(300, () => set('features/base/conference', {error: {name: 'conference.connectionError.notAllowed'}}));
if (scenario === 'waiting') after(300, () => {
  set('features/base/conference', {error: {name: 'conference.authenticationRequired'}, authRequired: conference});
  set('features/authentication', {waitForOwnerTimeoutID: 7});
});
if (scenario === 'joined') { after(200, join); after(300, () => set('features/base/participants', {remote: new Map([...anna, ['s1', {id: 's1', fakeParticipant: 'RemoteScreenShare'}]])})); }
// Anna shares her screen (a "fake" participant: not a person), then leaves; the share lingers.
const share = new Map([['s1', {id: 's1', fakeParticipant: 'RemoteScreenShare'}]]);
if (scenario === 'hangup') { after(200, join); after(300, () => set('features/base/participants', {remote: new Map([...anna, ...share])}));
  after(1200, () => set('features/base/participants', {remote: share})); }
if (scenario === 'blip') { after(200, join); after(300, () => set('features/base/participants', {remote: anna}));
  after(1000, () => set('features/base/participants', {remote: new Map()})); after(2000, () => set('features/base/participants', {remote: anna})); }
if (scenario === 'destroyed') { after(200, join); after(300, () => set('features/base/participants', {remote: anna}));
  after(1000, () => set('features/base/conference', {conference: undefined, error: {name: 'conference.destroyed'}})); }
</script></html>"""


# --- the display -------------------------------------------------------------------------------


class Display:
    """Xvfb on a free display number (``-displayfd``: Xvfb picks it and says when it is ready)."""

    def __init__(self, size: tuple[int, int] = (1280, 800)) -> None:
        self.size = size
        read, write = os.pipe()
        self.proc = subprocess.Popen(
            [XVFB, "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp", "-noreset"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        if not number:
            self.proc.kill()
            raise RuntimeError("Xvfb did not start")
        self.name = f":{number}"

    def grab(self):
        from PIL import ImageGrab

        return ImageGrab.grab(xdisplay=self.name).convert("RGB")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# --- the servers -------------------------------------------------------------------------------


def make_certificate(folder: Path) -> tuple[Path, Path, str]:
    """(certificate, key, base64 SHA-256 of its public key) for 127.0.0.1 and localhost."""
    cert, key = folder / "call.crt", folder / "call.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(cert)], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True).stdout
    return cert, key, base64.b64encode(hashlib.sha256(der).digest()).decode()


@dataclass
class CallServer:
    """One call server. ``mode``: ``call`` (the page, and a room-size endpoint answering from
    ``rooms``), ``slow`` (room-size answers after ``delay`` seconds), ``failing`` (500), ``missing``
    (no endpoint: Jitsi's nginx serves its room page for any unknown path), ``hang`` (accepts,
    never answers)."""

    mode: str = "call"
    rooms: dict = field(default_factory=dict)
    reports: list = field(default_factory=list)
    asked: list = field(default_factory=list)
    delay: float = 30.0
    port: int = 0
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        return f"https://localhost:{self.port}"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def serve(cert: Path, key: Path, mode: str = "call", **kw) -> CallServer:
    """A call server on 127.0.0.1 (and localhost) over HTTPS, each connection's handshake on its
    own thread (a browser's spare connection that never speaks must not stall the others)."""
    call = CallServer(mode, **kw)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            call.asked.append((time.monotonic(), self.path))
            if call.mode == "hang":
                time.sleep(call.delay)
                return
            if parts.path == "/room-size":
                return self._room_size(parse_qs(parts.query))
            if parts.path == "/error":
                return self._send(500, "text/html", b"<!doctype html><h1>Internal Server Error</h1>")
            self._send(200, "text/html; charset=utf-8", CALL_PAGE.encode())

        def _room_size(self, query: dict) -> None:
            if call.mode == "slow":
                time.sleep(call.delay)
            if call.mode == "failing":
                return self._send(500, "text/html", b"<h1>500</h1>")
            if call.mode == "missing":
                return self._send(200, "text/html; charset=utf-8", CALL_PAGE.encode())
            if not query:
                return self._send(400, "text/html", b"")
            room = query.get("room", [""])[0]
            if room not in call.rooms:
                return self._send(404, "text/html", b"")
            self._send(200, "application/json", json.dumps({"participants": call.rooms[room]}).encode())

        def do_POST(self) -> None:  # noqa: N802
            length = min(int(self.headers.get("Content-Length") or 0), 100_000)
            try:
                call.reports.append(json.loads(self.rfile.read(length)))
            except ValueError:
                pass
            self._send(204, "text/plain", b"")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

        def log_message(self, *_args) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def finish_request(self, request, client_address) -> None:
            request.settimeout(60)
            try:
                request = context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            super().finish_request(request, client_address)

    call.server = Server(("127.0.0.1", 0), Handler)
    call.port = call.server.server_address[1]
    threading.Thread(target=call.server.serve_forever, daemon=True).start()
    return call


# --- the browser -------------------------------------------------------------------------------


def browser_command(spki: str) -> list[str]:
    """The appliance's browser command, plus what a test needs and nothing that changes what a
    page may do: Chromium's fake camera and microphone (devices, never the permission), trust in
    the test certificate, and, as root (CI), no sandbox (Chromium refuses root with one)."""
    from klick.config import DEFAULT_BROWSER

    extra = ["--use-fake-device-for-media-stream", f"--ignore-certificate-errors-spki-list={spki}"]
    if os.geteuid() == 0:
        extra.append("--no-sandbox")
    return [*DEFAULT_BROWSER, *extra]


def chromium_version() -> str:
    return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def chromium_processes(marker: str | Path) -> list:
    """Living Chromium processes whose command line names ``marker`` (a profile folder), wherever
    they are parented (the crash handler runs in a session of its own)."""
    mark = str(marker).encode()
    return [p for p in processes() if p.name.startswith("chrom") and p.state != "Z" and mark in _cmdline(p.pid)]


def page_share(img, colour: tuple[int, int, int] = PAGE) -> float:
    import numpy as np

    px = np.asarray(img, dtype=np.int16)
    return float((px == colour).all(axis=2).mean())
