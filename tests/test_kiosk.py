"""The appliance's screen in the real kiosk: Debian's cage, headless, as klick-launcher.service
starts it, with real XWayland, a real sim bridge, real Chromium and screenshots taken by grim.

cage refuses to run as root, and CI runs as root: then cage, the launcher, the bridge and
Chromium all run as ``nobody`` (``setpriv``), with their own runtime folder and home in a
scratch folder that user owns. Chromium then sandboxes itself as it would on the appliance,
without ``--no-sandbox``.

The headless output is 1280x720 and cannot be given another mode in Debian 12's cage (0.1.4
has no output-management protocol, so wlr-randr cannot talk to it). The second size comes from
cage's own ``-r`` (the output turned a quarter: 720x1280, a portrait tablet). The 1280x720 run
turns it twice (upside down, same size) for a reason of the test alone: with the headless backend
wlroots 0.15 shows a full-screen client's buffer directly (scan-out), and grim then reads a stale
frame; a turned output is always composed, so the PNG is what a screen would show.

One scenario runs once for the module (cage sessions are slow to start); the tests read what it
saw. PNGs go to artifacts/kiosk/.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import pwd
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

from tests.bridge_commands import send, wait_for, wait_for_the_reader  # noqa: E402
from tests.proctree import Proc, descendants, processes, still_running  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "kiosk"
CAGE, GRIM, CHROMIUM = shutil.which("cage"), shutil.which("grim"), shutil.which("chromium")

pytestmark = [pytest.mark.serial, pytest.mark.ui, pytest.mark.slow]
needs_cage = pytest.mark.skipif(
    not CAGE or not GRIM, reason="cage or grim is not installed (make test installs cage, xwayland and grim)"
)

WEB_UID = "04C0FFEE000001"
#: Colours the tests look for: the launcher's background and drawn tablet, the card's face, and
#: the local page Chromium shows.
BG, PANEL, TEXT, CARD_YELLOW, PAGE = (16, 42, 67), (51, 78, 104), (255, 253, 247), (255, 212, 59), (46, 139, 87)
#: The height of the clock's digits for each pixel of its font size (Roboto Bold's figures).
DIGITS_PER_PX = 0.72
PAGE_HTML = (
    '<!doctype html><html lang="sv"><meta charset="utf-8"><title>Klick</title>'
    '<body style="margin:0;background:rgb(46,139,87);color:#fff;font:64px sans-serif">'
    '<p style="margin:60px">Hej från kiosken</p></body></html>'
).encode()


# --- who runs the kiosk, and with which Python ----------------------------------------------------


@dataclass(frozen=True)
class KioskUser:
    name: str
    uid: int
    gid: int
    prefix: tuple[str, ...]

    def run(self, argv: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, *argv], env=env, capture_output=True, text=True, timeout=60, **kw)

    def start(self, argv: list[str], env: dict, log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen(
                [*self.prefix, *argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def kiosk_user() -> KioskUser:
    if os.getuid() != 0:
        return KioskUser(pwd.getpwuid(os.getuid()).pw_name, os.getuid(), os.getgid(), ())
    pw = pwd.getpwnam("nobody")
    return KioskUser(
        "nobody", pw.pw_uid, pw.pw_gid, ("setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--")
    )


def klick_for(user: KioskUser, scratch: Path, env: dict) -> str:
    """The `klick` command the kiosk user can run: this venv's own, or, when its interpreter lies
    where that user cannot go (a pyenv under /root), Debian's python3 of the same version on this
    venv's packages."""
    own = str(Path(sys.executable).parent / "klick")
    reachable = ["test", "-r", os.path.realpath(sys.executable), "-a", "-r", sysconfig.get_paths()["stdlib"]]
    if user.run(reachable, env).returncode == 0 and user.run([own, "--help"], env).returncode == 0:
        return own
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    reason = f"{user.name} cannot run {sys.executable}"
    if system.is_file():
        wrapper = scratch / "bin" / "klick"
        wrapper.parent.mkdir()
        purelib = sysconfig.get_paths()["purelib"]
        wrapper.write_text(
            f"#!{system} -IS\nimport site\nsite.addsitedir({purelib!r})\nfrom klick.cli import main\nmain()\n", encoding="utf-8"
        )
        wrapper.chmod(0o755)
        os.chown(wrapper.parent, user.uid, user.gid)
        probe = user.run([str(wrapper), "--help"], env)
        if probe.returncode == 0:
            return str(wrapper)
        reason += f", nor {system} on {purelib}: {probe.stderr.strip()[-300:]}"
    pytest.skip(f"the kiosk test needs a Python the unprivileged user can run: {reason}")


# --- pictures ------------------------------------------------------------------------------------


def pixels(img):
    import numpy as np

    return np.asarray(img.convert("RGB"), dtype=np.int16)


def share(img, colour: tuple[int, int, int]) -> float:
    """The part of the picture in exactly ``colour``."""
    return float((pixels(img) == colour).all(axis=2).mean())


def home_problems(img, size: tuple[int, int]) -> list[str]:
    """What is wrong with a home screen on an output of ``size``, checked against home's layout
    (launcher/screens/home.py): empty means it fills the output and nothing is cut."""
    import numpy as np

    if img.size != size:
        return [f"the picture is {img.size[0]}x{img.size[1]}, not the output's {size[0]}x{size[1]}"]
    w, h = size
    px = pixels(img)
    problems = []
    black = int((px.max(axis=2) < 8).sum())
    if black:
        problems.append(f"{black} black pixels: the launcher does not cover the whole output")
    # Nothing touches an edge: a window larger than the output would cut through something.
    is_bg = (px == BG).all(axis=2)
    for name, edge in {"top": is_bg[0], "bottom": is_bg[-1], "left": is_bg[:, 0], "right": is_bg[:, -1]}.items():
        if not edge.all():
            problems.append(f"the {name} edge is not all background: something is cut there")
    # The drawn tablet of the slot picture lies where the layout puts it: lying down x 5-47 %,
    # y 4-46 % from below; upright (a tablet on its side) x 10-90 %, y 4-44 % from below.
    ys, xs = np.nonzero((px == PANEL).all(axis=2))
    if len(xs) == 0:
        problems.append("the slot picture is not on the screen")
    else:
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        x0, y0, x1, y1 = box
        left, right, top = (0.10, 0.90, 0.56) if h > w else (0.05, 0.47, 0.54)
        if not (x0 >= left * w - 2 and x1 <= right * w + 2 and y0 >= top * h - 2 and y1 <= 0.96 * h + 2):
            problems.append(f"the slot picture is at {box}, outside its place in the layout")
    if is_bg.mean() < 0.5:
        problems.append("less than half of the picture is the launcher's background")
    # The clock's digits (the tallest run of text rows) are as tall as home's layout makes them
    # for this size: the launcher laid out for the output, not for the configured display size.
    from launcher.theme import sizes_for

    rows = (px == TEXT).all(axis=2).any(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], rows.astype(np.int8), [0]))))
    tallest = int((edges[1::2] - edges[::2]).max()) if len(edges) else 0
    expected = DIGITS_PER_PX * sizes_for(w, h, 1.0, 160).px("clock")
    if abs(tallest - expected) > 0.08 * expected:
        problems.append(f"the clock's digits are {tallest} px tall; laid out for {w}x{h} they are about {expected:.0f} px")
    return problems


# --- the kiosk ----------------------------------------------------------------------------------


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE_HTML)))
        self.end_headers()
        self.wfile.write(PAGE_HTML)

    def log_message(self, *_args) -> None:
        pass


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@dataclass
class Kiosk:
    user: KioskUser
    scratch: Path
    klick: str
    env: dict
    results: dict = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.scratch / "home"

    @property
    def sock(self) -> Path:
        return self.home / "bridge.sock"

    def shot(self, name: str, timeout: float, good) -> tuple[object, list[str]]:
        """Screenshots until ``good(img)`` finds no problems (or time runs out); the last one
        is saved as artifacts/kiosk/NAME.png. Returns it and its problems."""
        from PIL import Image

        png = self.scratch / "shot.png"
        deadline = time.monotonic() + timeout
        img, problems = None, ["no screenshot"]
        while True:
            taken = self.user.run([GRIM, str(png)], self.env)
            if taken.returncode == 0:
                with Image.open(png) as raw:
                    img = raw.convert("RGB")
                problems = good(img)
            else:
                problems = [f"grim: {taken.stderr.strip()}"]
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if img is not None:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            img.save(ARTIFACTS / f"{name}.png")
        return img, problems

    def chromium(self) -> list[Proc]:
        """Chromium's processes of this kiosk, wherever they are parented (its crash handler
        runs in a session of its own): all name the scratch folder on their command line."""
        mine = []
        for p in processes():
            if not p.name.startswith("chrom") or p.state == "Z":
                continue
            if str(self.scratch).encode() in _cmdline(p.pid):
                mine.append(p)
        return mine


def unit_command(klick: str, config: Path, turns: int) -> tuple[list[str], dict]:
    """klick-launcher.service's own ExecStart and Environment, with this checkout's `klick` and
    the test's settings in place of /opt/klick and /etc/klick, and the output turned ``turns``
    quarters (cage's -r)."""
    argv: list[str] = []
    env: dict = {}
    for line in (REPO / "config/systemd/klick-launcher.service").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            argv = shlex.split(value)
        elif key == "Environment":
            env.update(item.split("=", 1) for item in shlex.split(value))
    assert argv[:2] == ["/usr/bin/cage", "-d"] and "/opt/klick/venv/bin/klick" in argv, argv
    swap = {"/usr/bin/cage": CAGE, "/opt/klick/venv/bin/klick": klick, "/etc/klick/klick.yaml": str(config)}
    argv = [swap.get(a, a) for a in argv]
    return [argv[0], *["-r"] * turns, *argv[1:]], env


def owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def start_cage(k: Kiosk, turns: int) -> tuple[subprocess.Popen, int]:
    """cage as the unit starts it (``cage -d -- klick launcher --config ...``), the output turned
    ``turns`` quarters; returns cage and the launcher's pid."""
    runtime = k.scratch / "run"
    shutil.rmtree(runtime, ignore_errors=True)
    runtime.mkdir(mode=0o700)
    os.chown(runtime, k.user.uid, k.user.gid)
    argv, unit_env = unit_command(k.klick, k.home / "klick.yaml", turns)
    cage = k.user.start(argv, {**k.env, **unit_env}, k.scratch / "cage.log")

    def launcher_pid() -> int | None:
        for p in descendants(cage.pid):
            if p.ppid == cage.pid and b"launcher" in _cmdline(p.pid):
                return p.pid
        return None

    try:
        pid = wait_for(lambda: cage.poll() is not None or launcher_pid(), 30, "cage to start the launcher")
    except AssertionError:
        pid = None
    if cage.poll() is not None or not pid:
        raise AssertionError(f"cage or the launcher did not start (cage's exit status {cage.poll()}):\n{log_tail(k)}")
    return cage, pid


def stop_cage(cage: subprocess.Popen, launcher: int) -> dict:
    """SIGTERM to the launcher, as `systemctl stop` sends it: it must end within 2 s, and cage
    with it."""
    started = time.monotonic()
    os.kill(launcher, signal.SIGTERM)
    try:
        wait_for(lambda: not any(p.pid == launcher and p.state != "Z" for p in processes()), 10, "the launcher to end")
        ended = time.monotonic() - started
        code = cage.wait(10)
    except (AssertionError, subprocess.TimeoutExpired):
        ended, code = None, None
    finally:
        if cage.poll() is None:
            os.killpg(cage.pid, signal.SIGKILL)
            cage.wait(10)
    return {"launcher_stopped_after": ended, "cage_exit": code}


def log_tail(k: Kiosk) -> str:
    text = ""
    for name in ("cage.log", "bridge.log"):
        try:
            lines = (k.scratch / name).read_text(errors="replace").splitlines()
        except OSError:
            continue
        noise = ("Basic output test failed", "dbus/")
        text += f"--- {name}\n" + "\n".join(line for line in lines if not any(n in line for n in noise))[-3000:] + "\n"
    return text


def serve_page(scratch: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """The local page over HTTPS (a card's address must be https), with a certificate made here;
    returns the server and its key's SPKI hash, for Chromium's one test-only switch."""
    cert, key = scratch / "page.crt", scratch / "page.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(cert)], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True).stdout
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, base64.b64encode(hashlib.sha256(der).digest()).decode()


def write_settings(k: Kiosk, page_url: str, spki: str) -> None:
    """The appliance's browser command, plus trust in the test page's own certificate (the only
    addition: no --no-sandbox, no switch that changes what a resident would see)."""
    from klick.config import DEFAULT_BROWSER

    browser = [*DEFAULT_BROWSER, f"--ignore-certificate-errors-spki-list={spki}"]
    home = k.home
    (home / "klick.yaml").write_text(
        f"reader:\n  driver: sim\n  grace_ms: 0\nlocale: sv\n"
        f"paths:\n  registry: {home / 'cards.yaml'}\n  usage_db: {home / 'usage.db'}\n  socket: {k.sock}\n"
        f"browser:\n  command: {json.dumps(browser)}\n"
        f"  profile: {home / 'browser-profile'}\n  call_profile: {home / 'browser-call-profile'}\n"
        "pilot:\n  device_name: kiosk-test\n  enrolled: true\n",
        encoding="utf-8",
    )
    (home / "cards.yaml").write_text(
        f'version: 1\ncards:\n  - uid: "{WEB_UID}"\n    label: Sidan\n    colour: yellow\n'
        f"    action:\n      type: web\n      url: {page_url}\n",
        encoding="utf-8",
    )


def card_cycle(k: Kiosk, launcher: int, *, freeze: bool, tag: str) -> None:
    """Card in: its face, then Chromium's page over it. Card out: Chromium's whole tree ends
    (also when ``freeze`` stopped it, so it cannot act on SIGTERM), and home is back."""
    r = k.results
    send(k.sock, {"command": "insert", "uid": WEB_UID})
    if not freeze:
        _, r["card_face_problems"] = k.shot(
            "card-face-1280x720", 15, lambda img: [] if share(img, CARD_YELLOW) > 0.3 else ["no yellow card face"]
        )
    _, page_problems = k.shot(
        f"chromium-1280x720{tag}",
        45,
        lambda img: [] if share(img, PAGE) > 0.9 and img.getpixel((0, 0)) == PAGE else ["the page does not fill the screen"],
    )
    r[f"page_problems{tag}"] = page_problems
    r[f"chromium_processes{tag}"] = running = k.chromium()
    browser = next((p for p in descendants(launcher) if p.ppid == launcher), None)
    r[f"browser_is_the_launchers_child{tag}"] = browser is not None and browser.name.startswith("chrom")
    r[f"no_sandbox_flag{tag}"] = any(b"--no-sandbox" in _cmdline(p.pid) for p in running)
    r[f"chromium_user{tag}"] = {owner(p.pid) for p in running} - {None}
    if freeze and browser is not None:
        os.killpg(browser.pgid, signal.SIGSTOP)  # the whole group: none of it can act on SIGTERM
    started = time.monotonic()
    send(k.sock, {"command": "remove"})
    try:
        wait_for(lambda: not k.chromium(), 15, "Chromium to end")
        r[f"chromium_gone_after{tag}"] = time.monotonic() - started
    except AssertionError:
        r[f"chromium_gone_after{tag}"] = None
        r[f"chromium_left{tag}"] = k.chromium()
    r[f"left_in_groups{tag}"] = still_running(set(), {p.pgid for p in running if p.name == "chromium"})
    _, r[f"home_after{tag}"] = k.shot(f"home-after-card-out{tag}", 15, lambda img: home_problems(img, (1280, 720)))


@pytest.fixture(scope="module")
def kiosk():
    if not CAGE or not GRIM:
        pytest.skip("cage or grim is not installed (make test installs cage, xwayland and grim)")
    user = kiosk_user()
    scratch = Path(tempfile.mkdtemp(prefix="klick-kiosk-"))
    (scratch / "home").mkdir()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch / "home"),
        "XDG_RUNTIME_DIR": str(scratch / "run"),
        "LANG": "C.UTF-8",
        "KLICK_HOME": str(scratch / "home"),
        # The unit's own Environment= comes on top (unit_command); this makes cage run without a
        # screen, a GPU or input devices.
        "WLR_BACKENDS": "headless",
        "WLR_RENDERER": "pixman",
        "WLR_LIBINPUT_NO_DEVICES": "1",
        "WAYLAND_DISPLAY": "wayland-0",  # for grim; cage picks its own socket name (the first free)
    }
    server, spki = serve_page(scratch)
    bridge = None
    try:
        os.chown(scratch, user.uid, user.gid)
        os.chown(scratch / "home", user.uid, user.gid)
        k = Kiosk(user, scratch, klick_for(user, scratch, env), env)
        write_settings(k, f"https://127.0.0.1:{server.server_address[1]}/", spki)
        for f in k.home.iterdir():
            os.chown(f, user.uid, user.gid)
        bridge = user.start([k.klick, "bridge", "--config", str(k.home / "klick.yaml")], env, scratch / "bridge.log")
        started = time.monotonic()
        run_scenario(k)
        k.results["took"] = time.monotonic() - started
        k.results["log"] = log_tail(k)
        said = (scratch / "cage.log").read_text(errors="replace").splitlines()
        k.results["screen_sizes_said"] = [line.strip() for line in said if line.startswith("klick launcher: The screen is")]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "results.json").write_text(
            json.dumps({key: v for key, v in k.results.items() if key != "log"}, default=str, indent=1)
        )
        yield k
    finally:
        if bridge is not None and bridge.poll() is None:
            os.killpg(bridge.pid, signal.SIGTERM)
            bridge.wait(10)
        server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


def run_scenario(k: Kiosk) -> None:
    r = k.results
    # 1. A 1280x720 output: home, then a web card in and out twice (Chromium frozen the second time).
    cage, launcher = start_cage(k, turns=2)
    try:
        r["launcher_user"] = owner(launcher)
        _, r["home_1280x720"] = k.shot("home-1280x720", 30, lambda img: home_problems(img, (1280, 720)))
        r["xwayland"] = [p.name for p in processes() if p.name == "Xwayland" and owner(p.pid) == k.user.uid]
        wait_for_the_reader(k.sock)
        if CHROMIUM:
            card_cycle(k, launcher, freeze=False, tag="")
            card_cycle(k, launcher, freeze=True, tag="-frozen")
    finally:
        r["stop_1280x720"] = stop_cage(cage, launcher)
    # 2. The output turned a quarter: a 720x1280 portrait screen.
    cage, launcher = start_cage(k, turns=1)
    try:
        _, r["home_720x1280"] = k.shot("home-720x1280", 30, lambda img: home_problems(img, (720, 1280)))
    finally:
        r["stop_720x1280"] = stop_cage(cage, launcher)


# --- the tests ----------------------------------------------------------------------------------


@needs_cage
def test_the_launcher_runs_in_cage_as_an_unprivileged_user_through_xwayland(kiosk):
    r = kiosk.results
    assert r["launcher_user"] == kiosk.user.uid
    assert r["xwayland"], kiosk.results["log"]


@needs_cage
def test_home_fills_a_1280x720_output_and_nothing_is_cut(kiosk):
    assert kiosk.results["home_1280x720"] == [], kiosk.results["log"]
    assert kiosk.results["screen_sizes_said"][0] == "klick launcher: The screen is 1280x720, in Swedish."


@needs_cage
def test_home_fills_a_720x1280_portrait_output_and_nothing_is_cut(kiosk):
    assert kiosk.results["home_720x1280"] == [], kiosk.results["log"]
    assert kiosk.results["screen_sizes_said"][1:] == ["klick launcher: The screen is 720x1280, in Swedish."]


@needs_cage
def test_sigterm_ends_the_launcher_within_2_s_and_cage_with_it(kiosk):
    for size in ("1280x720", "720x1280"):
        stop = kiosk.results[f"stop_{size}"]
        assert stop["launcher_stopped_after"] is not None and stop["launcher_stopped_after"] < 2.0, (size, stop)
        assert stop["cage_exit"] == 0, (size, stop, kiosk.results["log"])


needs_chromium = pytest.mark.skipif(
    not CAGE or not GRIM or not CHROMIUM, reason="cage, grim or chromium is not installed (make test installs them)"
)


@needs_chromium
def test_card_in_shows_its_face_then_chromium_on_the_local_page_in_the_same_session(kiosk):
    r = kiosk.results
    assert r["card_face_problems"] == [], r["log"]
    assert r["page_problems"] == [], r["log"]
    assert r["browser_is_the_launchers_child"]
    assert r["chromium_user"] == {kiosk.user.uid}
    assert r["no_sandbox_flag"] is False  # it sandboxes itself as the unprivileged user


@needs_chromium
def test_card_out_ends_chromiums_whole_tree_and_home_is_back(kiosk):
    r = kiosk.results
    assert r["chromium_gone_after"] is not None and r["chromium_gone_after"] < 3.0, r.get("chromium_left")
    assert r["left_in_groups"] == []
    assert r["home_after"] == []


@needs_chromium
def test_card_out_ends_chromium_even_when_it_cannot_act_on_sigterm(kiosk):
    from launcher.actions import BROWSER_STOP_GRACE

    r = kiosk.results
    assert r["page_problems-frozen"] == []
    gone = r["chromium_gone_after-frozen"]
    # SIGKILL after the browser's grace: the whole tree gone within 3 s (issue 12).
    assert gone is not None and BROWSER_STOP_GRACE - 0.5 < gone < 3.0, (gone, r.get("chromium_left-frozen"))
    assert r["left_in_groups-frozen"] == []
    assert r["home_after-frozen"] == []


# --- every screen at the sizes tablets have, offscreen --------------------------------------------
#
# Every screen at the sizes tablets have (offscreen, every text size and language) is checked by
# tests/test_launcher_layout.py; home's pixels there by home_problems above.


def layout_problems(root, width: int, height: int) -> list[str]:
    """Widgets outside the window, and texts outside their boxes or over each other
    (tests/layout_check.py; Kivy does not clip a label: its text would spill over its neighbours
    or off the glass)."""
    from kivy.core.window import Window

    from tests.layout_check import layout_problems as text_problems

    problems = []
    for w in root.walk(restrict=True):
        if w.opacity == 0 or w.width <= 0 or w.height <= 0:
            continue
        name = getattr(w, "text", "")[:30] or type(w).__name__
        if w.x < -1 or w.y < -1 or w.right > width + 1 or w.top > height + 1:
            problems.append(f"{name!r} sticks out of the window: {[round(v) for v in (w.x, w.y, w.right, w.top)]}")
    return problems + text_problems(Window, [root], (width, height))
