"""The kiosk browser for real: Debian's Chromium on a headless X display (Xvfb), started with
exactly the command line the launcher builds (``actions.plan`` from a klick.yaml) and opened and
watched by the launcher's own code (``launcher.browser.BrowserRun``), against local HTTPS call
servers whose page behaves like Jitsi Meet (tests/browser_rig.py).

The only additions to the appliance's browser command are Chromium's fake camera and
microphone (devices: the permission is the launcher's to give), trust in the test certificate,
and, as root, --no-sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as a script in a mount namespace

from cards.model import VideoCall, Web  # noqa: E402
from klick.config import load_config  # noqa: E402
from launcher import actions  # noqa: E402
from launcher.browser import HANGUP_GRACE_S, BrowserRun  # noqa: E402
from tests.bridge_commands import wait_for  # noqa: E402
from tests.browser_rig import (  # noqa: E402
    CHROMIUM,
    PAGE,
    XVFB,
    Display,
    browser_command,
    chromium_processes,
    chromium_version,
    make_certificate,
    page_share,
    serve,
)

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "browser"

pytestmark = [
    pytest.mark.serial,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM or not XVFB, reason="chromium or Xvfb is not installed (make test installs them)"),
]


@pytest.fixture(scope="module")
def rig(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("browser-rig")
    cert, key, spki = make_certificate(folder)
    call = serve(cert, key, "call")
    hang = serve(cert, key, "hang", delay=20)
    display = Display()
    saved = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display.name
    (folder / "klick.yaml").write_text(
        f"browser:\n  command: {json.dumps(browser_command(spki))}\n"
        f"  profile: {folder / 'web-profile'}\n  call_profile: {folder / 'call-profile'}\n"
        f"calls:\n  allowed_servers: [{call.origin}]\n",
        encoding="utf-8",
    )
    version = chromium_version()
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # a line in the test log, also with -q
            reporter.write_line(f"\nreal browser: {version} (the launcher's argv and DevTools pipe, on Xvfb {display.name})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "chromium-version.txt").write_text(version + "\n", encoding="utf-8")
    try:
        yield {"cfg": load_config(folder / "klick.yaml"), "call": call, "hang": hang, "display": display, "folder": folder}
    finally:
        if saved is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = saved
        for profile in ("web-profile", "call-profile"):
            for p in chromium_processes(folder / profile):
                os.kill(p.pid, signal.SIGKILL)
        display.close()
        call.close()
        hang.close()


class Opened:
    """One page opened the launcher's way, with what its watch said."""

    def __init__(self, cfg, action, load_timeout: float = 20) -> None:
        self.page = actions.plan(action, cfg)
        assert isinstance(self.page, actions.BrowserPage)
        self.verdicts: list = []
        self.painted: list[float] = []
        self.started = time.perf_counter()
        self.run = BrowserRun(
            self.page, load_timeout=load_timeout, on_verdict=self.verdicts.append, on_painted=self.painted.append
        ).start()

    def verdict(self, timeout: float = 15):
        wait_for(lambda: self.verdicts, timeout, f"a verdict on {self.page.url}")
        return self.verdicts[0]

    def stop(self) -> float:
        """Stop as card out does; seconds until no Chromium process of its profile is left."""
        started = time.monotonic()
        self.run.stop()
        wait_for(lambda: not chromium_processes(self.page.profile), 10, "every Chromium process to end")
        return time.monotonic() - started

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *_exc) -> None:
        self.run.stop(wait=True)
        wait_for(lambda: not chromium_processes(self.page.profile), 10, "every Chromium process to end")


#: What a page hears when it asks for notifications and the location: no, at once.
NO = {"notifications": "denied", "location": "denied"}


def reports_for(call, page: str, origin: str | None = None) -> list[dict]:
    return [r for r in call.reports if r.get("page") == page and (origin is None or r.get("origin") == origin)]


def test_the_call_server_gets_a_live_camera_and_microphone_with_no_prompt_and_no_other_origin_does(rig):
    call = rig["call"]
    page = "/klick-away"
    with Opened(rig["cfg"], VideoCall("jitsi", call.origin, "klick-away", "Mamma")) as opened:
        assert opened.page.camera_origin == call.origin
        wait_for(lambda: reports_for(call, page, call.other_origin), 20, "the page on the other origin to report")
        granted = reports_for(call, page, call.origin)
        refused = reports_for(call, page, call.other_origin)
        assert opened.verdicts == []  # nothing went wrong, nothing to say
        assert opened.run.version.startswith(("Chrome/", "HeadlessChrome/"))
    # The call server: a camera and a microphone, live, without anyone touching anything.
    assert len(granted) == 1 and granted[0]["ok"] is True, granted
    assert sorted((t["kind"], t["state"]) for t in granted[0]["tracks"]) == [("audio", "live"), ("video", "live")]
    # The same browser, one origin further: refused at once, no prompt left waiting for a touch.
    assert refused == [{"origin": call.other_origin, "page": page, "ok": False, "error": "NotAllowedError", "asked": NO}]
    # Nothing else either, not even on the call server: no notifications, no location.
    assert granted[0]["asked"] == NO


def test_web_and_svt_pages_never_get_the_camera_not_even_on_the_call_servers_own_address(rig):
    call = rig["call"]
    page = "/klick-web-joined"
    with Opened(rig["cfg"], Web(call.origin + page)) as opened:
        assert opened.page.camera_origin is None and opened.page.profile == rig["cfg"].browser.profile
        wait_for(lambda: reports_for(call, page), 20, "the page to report")
    assert reports_for(call, page) == [
        {"origin": call.origin, "page": page, "ok": False, "error": "NotAllowedError", "asked": NO}
    ]


def test_a_page_that_does_not_load_is_told_with_its_reason(rig):
    cfg, call, hang = rig["cfg"], rig["call"], rig["hang"]
    import socket

    with socket.socket() as s:  # a port nothing listens on: the server is down
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cases = [
        (Web("https://klick-test.invalid/"), 20, ("load_failed", "net::ERR_NAME_NOT_RESOLVED")),
        (Web(f"https://127.0.0.1:{closed}/"), 20, ("load_failed", "net::ERR_CONNECTION_REFUSED")),
        (Web(call.origin + "/error"), 20, ("load_failed", "HTTP 500")),
        (Web(hang.origin + "/"), 3, ("load_timeout", "the page did not load in time")),
    ]
    seen = []
    for action, timeout, _ in cases:
        with Opened(cfg, action, load_timeout=timeout) as opened:
            verdict = opened.verdict(timeout + 10)
            seen.append((verdict.outcome, verdict.detail))
    assert seen == [want for _, _, want in cases]


@pytest.mark.parametrize(
    ("room", "want"),
    [
        ("klick-failed", ("conference_failed", "conference.connectionError.notAllowed")),
        ("klick-waiting", ("waiting_for_moderator", "conference.authenticationRequired")),
        ("klick-destroyed", ("ended_by_other_side", "conference.destroyed")),
        ("klick-hangup", ("ended_by_other_side", "the other side left")),
    ],
)
def test_each_jitsi_state_is_read_through_jitsi_meets_own_hooks(rig, room, want):
    call = rig["call"]
    with Opened(rig["cfg"], VideoCall("jitsi", call.origin, room, "Mamma")) as opened:
        verdict = opened.verdict(15)
        waited = time.perf_counter() - opened.started
    assert (verdict.outcome, verdict.detail) == want
    if room == "klick-hangup":  # Anna left 1.2 s after the page loaded: ended after the grace, not before
        assert waited >= 1.2 + HANGUP_GRACE_S - 0.5


def test_a_call_where_the_other_side_blips_away_and_back_goes_on_and_fills_the_screen(rig):
    call, display = rig["call"], rig["display"]
    crashed = rig["cfg"].browser.call_profile / "Default"
    crashed.mkdir(parents=True, exist_ok=True)
    # As if the browser had been killed last time: no "restore pages?" may show now.
    (crashed / "Preferences").write_text(json.dumps({"profile": {"exit_type": "Crashed", "exited_cleanly": False}}))
    with Opened(rig["cfg"], VideoCall("jitsi", call.origin, "klick-blip", "Mamma")) as opened:
        wait_for(lambda: reports_for(call, "/klick-blip"), 20, "the call page")
        time.sleep(1.5 + HANGUP_GRACE_S)  # Anna is away for 1 s of it
        assert opened.verdicts == []
        img = display.grab()
        img.save(ARTIFACTS / "chromium-call-page.png")
    assert img.size == display.size
    # The page fills the whole screen: no address bar, no bubble, no infobar, no border.
    assert page_share(img) > 0.9
    corners = [(0, 0), (img.width - 2, 0), (0, img.height - 2), (img.width - 2, img.height - 2), (img.width // 2, 2)]
    assert [img.getpixel(c) for c in corners] == [PAGE] * len(corners)
    prefs = json.loads((crashed / "Preferences").read_text())
    assert prefs["translate"] == {"enabled": False} and prefs["credentials_enable_service"] is False


def test_another_tab_or_window_is_closed_and_the_card_page_stays(rig):
    call = rig["call"]
    with Opened(rig["cfg"], VideoCall("jitsi", call.origin, "klick-tabs-joined", "Mamma")) as opened:
        wait_for(lambda: opened.painted, 20, "the call page")
        pipe = opened.run._pipe  # as a link with target=_blank or a stray ctrl+T would
        pipe.call("Target.createTarget", {"url": call.other_origin + "/klick-tab-joined"})
        wait_for(
            lambda: (
                [t["url"] for t in pipe.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
                == [call.origin + "/klick-tabs-joined#config.prejoinConfig.enabled=false&userInfo.displayName=%22Mamma%22"]
            ),
            10,
            "the other tab to close",
        )
        assert opened.verdicts == [] and opened.run.poll() is None


HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
from cards.model import Web
from klick.config import load_config
from launcher import actions
from launcher.browser import BrowserRun
painted = []
page = actions.plan(Web({url!r}), load_config({cfg!r}))
BrowserRun(page, load_timeout=20, on_verdict=print, on_painted=painted.append).start()
while not painted:
    time.sleep(0.05)
print("painted", flush=True)
time.sleep(60)
"""


def test_a_launcher_killed_outright_takes_its_browser_with_it(rig, tmp_path):
    """SIGKILL gives the launcher no chance to end anything: Chromium sees its DevTools pipe
    close and quits by itself, so no browser is ever left over a dead launcher."""
    call = rig["call"]
    holder = tmp_path / "holder.py"
    holder.write_text(
        HOLDER.format(repo=str(REPO), url=call.origin + "/klick-held-joined", cfg=str(rig["folder"] / "klick.yaml"))
    )
    proc = subprocess.Popen([sys.executable, str(holder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "painted"
        assert chromium_processes(rig["cfg"].browser.profile)
        killed = time.monotonic()
        proc.kill()
        proc.wait(10)
        wait_for(lambda: not chromium_processes(rig["cfg"].browser.profile), 10, "Chromium to quit by itself")
        assert time.monotonic() - killed < 3.0
    finally:
        proc.kill()
        for p in chromium_processes(rig["cfg"].browser.profile):
            os.kill(p.pid, signal.SIGKILL)


@pytest.mark.parametrize("frozen", [False, True], ids=["closes", "ignores-sigterm"])
def test_stopping_ends_every_chromium_process_within_3_s(rig, frozen):
    call = rig["call"]
    opened = Opened(rig["cfg"], VideoCall("jitsi", call.origin, "klick-joined", "Mamma"))
    try:
        wait_for(lambda: opened.painted, 20, "the call page's first paint")
        running = chromium_processes(opened.page.profile)
        assert len(running) >= 3  # the browser, its zygotes, GPU/network/renderer processes
        if frozen:
            os.killpg(opened.run.pid, signal.SIGSTOP)  # none of the group can act on its pipe or SIGTERM
        gone_after = opened.stop()
    finally:
        opened.run.stop(wait=True)
    assert chromium_processes(opened.page.profile) == []
    assert gone_after < 3.0, gone_after
    if frozen:
        assert gone_after >= actions.BROWSER_STOP_GRACE - 0.2  # it was SIGKILL that ended it


@pytest.mark.skipif(os.geteuid() != 0, reason="the demo adds --no-sandbox only as root")
def test_the_demo_as_root_opens_the_real_chromium_not_a_closed_window(rig, tmp_path):
    """`make run` on a fresh VM runs as root: Chromium, which refuses root with its sandbox,
    must still open (the demo, and only the demo, adds --no-sandbox)."""
    from launcher.demo import prepare_demo_home

    cfg = load_config(prepare_demo_home(tmp_path / "demo").config)
    assert "--no-sandbox" in cfg.browser.command
    with Opened(cfg, Web(rig["call"].origin + "/klick-demo-joined")) as opened:
        verdict = opened.verdict(20)  # the demo does not trust the test's certificate: that is fine
        assert opened.run.version.startswith("Chrome/")  # the real browser ran, as root
    assert (verdict.outcome, verdict.detail) == ("load_failed", "net::ERR_CERT_AUTHORITY_INVALID")


# --- the appliance's managed policy ----------------------------------------------------------------
#
# make install-appliance puts config/appliance/chromium-policy.json in
# /etc/chromium/policies/managed/, where Chromium reads policies. The test gives Chromium that
# folder in a mount namespace of its own (unshare), so the machine's /etc is never written.


def _policy_probe(etc: Path, cfg_path: Path, origin: str, other: str) -> None:
    """In the mount namespace: the policy in place of /etc/chromium, then (1) a bare Chromium, no
    launcher, no profile settings, no prompt switch, on a page of the other origin that asks for
    the camera (only the policy can refuse it: else a prompt would wait for ever), and (2) the
    launcher's call page, whose grant the policy must leave working. One after the other, each
    until the test (reading the reports) says on stdin that it has heard from the page: with both
    windows at once, the launcher's covered the bare one, whose questions then waited a minute."""
    subprocess.run(["mount", "--bind", str(etc), "/etc/chromium"], check=True)
    cfg = load_config(cfg_path)
    bare = Path(cfg.browser.profile).parent / "bare-profile"
    argv = [*cfg.browser.command, f"--user-data-dir={bare}", f"{other}/klick-policy-bare"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        sys.stdin.readline()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    with Opened(cfg, VideoCall("jitsi", origin, "klick-policy-joined", "Mamma")) as opened:
        wait_for(lambda: opened.painted, 30, "the call page")
        sys.stdin.readline()


def test_the_appliances_chromium_policy_refuses_every_site_and_leaves_the_call_grant_working(rig, tmp_path):
    unshare = shutil.which("unshare")
    if not unshare or not Path("/etc/chromium").is_dir():
        pytest.skip("unshare or /etc/chromium is missing")
    if subprocess.run([unshare, "--mount", "--", "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine allows no mount namespace (unshare --mount needs root)")
    call = rig["call"]
    etc = tmp_path / "etc-chromium"
    shutil.copytree("/etc/chromium", etc)
    (etc / "policies" / "managed").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config/appliance/chromium-policy.json", etc / "policies" / "managed" / "klick.json")
    probe = subprocess.Popen(
        [unshare, "--mount", "--propagation", "private", "--", sys.executable, __file__, "policy", str(etc)]
        + [str(rig["folder"] / "klick.yaml"), call.origin, call.other_origin],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert probe.stdin is not None
    try:
        for page in ("/klick-policy-bare", "/klick-policy-joined"):
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and probe.poll() is None and not reports_for(call, page):
                time.sleep(0.05)
            probe.stdin.write("next\n")
            probe.stdin.flush()
    except BrokenPipeError:
        pass  # the probe ended early: its stderr says why
    _, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err[-3000:]
    assert reports_for(call, "/klick-policy-bare") == [
        {"origin": call.other_origin, "page": "/klick-policy-bare", "ok": False, "error": "NotAllowedError", "asked": NO}
    ]
    granted = reports_for(call, "/klick-policy-joined")
    assert len(granted) == 1 and granted[0]["ok"] is True, granted
    assert json.loads((REPO / "config/appliance/chromium-policy.json").read_text()).get("DeveloperToolsAvailability") is None


if __name__ == "__main__" and sys.argv[1] == "policy":
    _policy_probe(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5])
