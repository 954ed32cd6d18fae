"""`klick doctor`: all fine on the demo setup; each check fails, with its fix, when its cause is set up."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from klick.cli.doctor_checks import (
    MIN_FREE_BYTES,
    UDEV_RULE,
    BridgeView,
    Machine,
    check_bridge,
    check_browser,
    check_disk,
    check_permissions,
    check_reader,
    check_sound,
    check_usage_log,
    run_doctor,
)
from klick.config import load_config
from klick.events import CardPresent, ReaderStatus, encode_event
from tests.conftest import KLICK, REPO

DEMO = str(REPO / "config" / "demo-cards.yaml")


@pytest.fixture
def short_dir():
    """Unix socket paths must stay under ~100 bytes; pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="kd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def setup(klick_home, short_dir):
    """A demo-like device: simulated reader, demo cards, the demo's stand-in browser, speech and the
    waiting chime off (so no espeak-ng or aplay is needed)."""
    settings = {
        "reader": {"driver": "sim"},
        "browser": {"command": [sys.executable, "-m", "launcher.demo_browser"]},
        "calls": {"waiting_poll_s": 0},
        "speech": False,
        "paths": {"registry": DEMO, "socket": str(short_dir / "bridge.sock")},
    }

    def write(**changes) -> dict:
        data = yaml.safe_load(yaml.safe_dump(settings))
        for dotted, value in changes.items():
            section, _, key = dotted.partition("__")
            if key:
                data.setdefault(section, {})[key] = value
            else:
                data[section] = value
        (klick_home / "klick.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        return data

    write()
    return write


def doctor(env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KLICK, "doctor"], capture_output=True, text=True, env=env or os.environ.copy(), timeout=60)


def line(result: subprocess.CompletedProcess, name: str) -> str:
    found = [l for l in result.stdout.splitlines() if l[6:].startswith(name + ":")]
    assert len(found) == 1, result.stdout
    return found[0]


class FakeBridge:
    """A small Unix socket server that greets each client with Klick event lines, as the bridge does."""

    def __init__(self, path: Path, lines: list[bytes]):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.lines = lines
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                client.sendall(b"".join(self.lines))
                time.sleep(2)

    def close(self) -> None:
        self.sock.close()


# --- the demo setup: every check fine -------------------------------------------------------------


def test_demo_setup_with_a_real_bridge_exits_0_and_prints_each_check(setup, short_dir):
    bridge = subprocess.Popen([KLICK, "bridge"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (short_dir / "bridge.sock").exists():
            assert bridge.poll() is None, bridge.stdout.read()
            assert time.monotonic() < deadline, "the bridge did not open its socket"
            time.sleep(0.05)
        time.sleep(0.3)
        result = doctor()
    finally:
        bridge.terminate()
        bridge.wait(timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    names = [l[6:].split(":")[0] for l in lines[:-1]]
    assert names == [
        "Settings",
        "Cards",
        "Reader",
        "Permissions",
        "Bridge",
        "Browser",
        "Kiosk",
        "Speech",
        "Sound",
        "Disk",
        "Usage log",
    ]
    assert all(l.startswith("OK    ") for l in lines[:-1])
    assert lines[-1] == "All 11 checks are fine."
    assert "5 cards" in line(result, "Cards")
    assert "connected" in line(result, "Bridge") and "connected" in line(result, "Reader")


def test_without_a_bridge_the_bridge_is_the_one_thing_to_fix(setup):
    result = doctor()
    assert result.returncode == 1
    assert line(result, "Bridge").startswith("FIX   ") and "not running" in line(result, "Bridge")
    assert "klick bridge" in line(result, "Bridge").split("→")[1]
    assert result.stdout.count("FIX   ") == 1 and "1 thing to fix." in result.stdout


# --- each check, failing for its own reason -------------------------------------------------------


def test_bad_settings_file_is_the_only_line(klick_home):
    (klick_home / "klick.yaml").write_text("reader:\n  driver: magic\n", encoding="utf-8")
    result = doctor()
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith("FIX   Settings:") and "driver" in result.stdout
    assert "klick config check" in result.stdout and "Traceback" not in result.stderr


def test_broken_card_file_names_its_line(setup, klick_home):
    cards = klick_home / "cards.yaml"
    cards.write_text("cards:\n  - uid: 04AA\n    label: Anna\n    action: {type: web, url: 'http://a.se'}\n")
    setup(paths__registry=str(cards))
    result = doctor()
    assert result.returncode == 1
    text = line(result, "Cards")
    assert text.startswith("FIX") and "cards.yaml:4" in text and "klick cards check" in text


def test_missing_card_file(setup, klick_home):
    setup(paths__registry=str(klick_home / "nothing.yaml"))
    text = line(doctor(), "Cards")
    assert text.startswith("FIX") and "no card file" in text and "klick cards add" in text


def test_serial_device_that_does_not_exist(setup):
    setup(reader={"driver": "serial", "device": "/dev/klick-no-such-reader"})
    result = doctor()
    assert result.returncode == 1
    text = line(result, "Reader")
    assert text.startswith("FIX") and "no serial device at /dev/klick-no-such-reader" in text


def test_serial_device_empty(setup):
    setup(reader={"driver": "serial"})
    text = line(doctor(), "Reader")
    assert text.startswith("FIX") and "reader.device is empty" in text


def test_serial_device_on_a_real_pty_is_found(setup):
    master, slave = os.openpty()
    try:
        setup(reader={"driver": "serial", "device": os.ttyname(slave)})
        text = line(doctor(), "Reader")
    finally:
        os.close(master)
        os.close(slave)
    assert text.startswith("OK") and "serial reader is at /dev/pts/" in text


def test_nfc_probe_through_nfcpys_udp_driver_and_a_missing_usb_reader(setup):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    setup(reader={"driver": "nfc", "device": f"udp:127.0.0.1:{port}"})
    text = line(doctor(), "Reader")
    assert text.startswith("OK") and "NFC reader answers" in text
    setup(reader={"driver": "nfc", "device": "usb:ffff:ffff"})
    text = line(doctor(), "Reader")
    assert text.startswith("FIX") and "no NFC reader found" in text


def test_hid_reader_missing(setup):
    setup(reader={"driver": "hid", "device": "/dev/input/by-id/no-such-rfid-kbd"})
    text = line(doctor(), "Reader")
    assert text.startswith("FIX") and "no input device at /dev/input/by-id/no-such-rfid-kbd" in text


def test_stale_socket_from_a_stopped_bridge(setup, short_dir):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(short_dir / "bridge.sock"))
    sock.close()  # the file stays, nobody listens: a bridge that was killed
    text = line(doctor(), "Bridge")
    assert text.startswith("FIX") and "not running" in text


def test_something_silent_on_the_socket(setup, short_dir):
    server = FakeBridge(short_dir / "bridge.sock", [])
    try:
        text = line(doctor(), "Bridge")
    finally:
        server.close()
    assert text.startswith("FIX") and "said nothing" in text


def test_bridge_greeting_is_reported_and_trusted_for_the_reader(setup, short_dir):
    setup(reader={"driver": "serial", "device": "/dev/klick-reader"})
    greeting = [
        encode_event(ReaderStatus("connected", "reader", "The card reader is connected.")),
        encode_event(CardPresent("04A2B3C4D5E680")),
    ]
    server = FakeBridge(short_dir / "bridge.sock", greeting)
    try:
        result = doctor()
    finally:
        server.close()
    assert "card 04A2B3C4D5E680 is in the reader" in line(result, "Bridge")
    # The bridge holds the reader: the doctor believes it rather than looking for /dev/klick-reader.
    assert line(result, "Reader").startswith("OK") and "bridge reports the serial reader" in line(result, "Reader")


def test_bridge_reporting_the_reader_lost(setup, short_dir):
    server = FakeBridge(short_dir / "bridge.sock", [encode_event(ReaderStatus("lost", "reader", "Unplugged."))])
    try:
        result = doctor()
    finally:
        server.close()
    assert line(result, "Bridge").startswith("OK")
    assert line(result, "Reader").startswith("FIX") and "has lost" in line(result, "Reader")


def test_browser_that_is_not_installed(setup):
    setup(browser={"command": ["klick-no-such-browser", "--kiosk"]})
    text = line(doctor(), "Browser")
    assert text.startswith("FIX") and "klick-no-such-browser" in text and "browser.command" in text


def test_speech_on_without_espeak_ng(setup, tmp_path):
    setup(speech=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "true").symlink_to(shutil.which("true"))
    env = dict(os.environ, PATH=str(bin_dir))
    result = doctor(env)
    assert line(result, "Speech").startswith("FIX") and "apt install espeak-ng" in line(result, "Speech")
    assert line(result, "Browser").startswith("OK")
    fake = bin_dir / "espeak-ng"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert line(doctor(env), "Speech").startswith("OK")


# --- the machine-dependent checks, through a Machine of the test's making --------------------------


def test_permissions_need_the_group_and_the_udev_rule(setup, tmp_path):
    setup(reader={"driver": "serial", "device": "/dev/klick-no-such-reader"})
    cfg = load_config()
    rules = tmp_path / "rules.d"
    rules.mkdir()
    carer = Machine(uid=1000, user="anna", groups=frozenset({"anna", "users"}), rules_dir=rules)
    finding = check_permissions(cfg, carer)
    assert not finding.ok
    assert "not in the dialout group" in finding.message and "usermod -aG dialout anna" in finding.fix
    assert UDEV_RULE in finding.message and "udevadm" in finding.fix
    (rules / UDEV_RULE).write_text("# klick\n")
    finding = check_permissions(cfg, replace(carer, groups=frozenset({"dialout"})))
    assert finding.ok and "dialout" in finding.message
    nfc_cfg = replace(cfg, reader=replace(cfg.reader, driver="nfc"))
    assert "plugdev" in check_permissions(nfc_cfg, carer).message
    sim_cfg = replace(cfg, reader=replace(cfg.reader, driver="sim"))
    assert check_permissions(sim_cfg, carer).ok


def test_low_disk_space_for_the_usage_log(setup):
    cfg = load_config()
    assert check_disk(cfg, Machine(min_free=1)).ok
    finding = check_disk(cfg, Machine(min_free=1 << 62))
    assert not finding.ok and "free for the usage log" in finding.message and "paths.usage_db" in finding.fix
    assert MIN_FREE_BYTES == 200 * 1024 * 1024


def test_a_damaged_usage_log_moved_aside_is_a_finding_naming_the_file(setup, klick_home):
    from klick.usage import UsageLog

    cfg = load_config()
    assert check_usage_log(cfg).ok and "no usage log yet" in check_usage_log(cfg).message
    UsageLog.open(cfg.paths.usage_db, device="d", enrolled=True).close()
    with open(cfg.paths.usage_db, "r+b") as fh:  # the launcher finds this at its next start
        fh.seek(4096)
        fh.write(b"\xa5" * 4096 * 3)
    UsageLog.open(cfg.paths.usage_db, device="d", enrolled=True).close()
    aside = [p for p in klick_home.glob("usage.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1
    result = doctor()
    found = line(result, "Usage log")
    assert found.startswith("FIX   Usage log: ") and str(aside[0]) in found and "moved aside" in found
    assert "rm " in found.split("→")[1]


def test_a_foreign_usage_log_is_a_finding(setup, klick_home):
    (klick_home / "usage.db").write_text("a shopping list\n" * 100)
    finding = check_usage_log(load_config())
    assert not finding.ok and "not a Klick usage database" in finding.message and "move" in finding.fix


def test_run_doctor_in_process_gives_typed_findings(setup):
    findings = run_doctor(machine=Machine(path=os.environ["PATH"]))
    assert [f.name for f in findings][:2] == ["Settings", "Cards"]
    assert all(isinstance(f.ok, bool) and f.message for f in findings)
    assert all(f.fix for f in findings if not f.ok)
    bridge = next(f for f in findings if f.name == "Bridge")
    assert not bridge.ok and bridge.line().startswith("FIX   Bridge: ") and " → " in bridge.line()


def test_reader_uses_the_bridge_only_for_its_own_reader(setup):
    cfg = load_config()
    cfg = replace(cfg, reader=replace(cfg.reader, driver="serial", device="/dev/klick-no-such-reader"))
    other = BridgeView(ReaderStatus("connected", "another-reader"))
    assert not check_reader(cfg, other).ok
    assert check_reader(cfg, BridgeView(ReaderStatus("connected", "reader"))).ok
    finding, view = check_bridge(cfg)
    assert not finding.ok and view is None


def test_kiosk_names_a_missing_xwayland_with_its_fix_on_the_appliance(tmp_path):
    from klick.cli.doctor_checks import check_kiosk

    units = tmp_path / "systemd"
    units.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    desktop = Machine(path=str(bin_dir), units_dir=units)
    assert check_kiosk(desktop).ok and "no kiosk" in check_kiosk(desktop).message  # not an appliance: nothing needed

    (units / "klick-launcher.service").write_text((REPO / "config/systemd/klick-launcher.service").read_text())
    finding = check_kiosk(desktop)
    assert not finding.ok
    assert "Xwayland is not installed" in finding.message and "cage is not installed" in finding.message
    assert "sudo apt install cage xwayland" in finding.fix

    cage = shutil.which("cage")
    if cage is None:
        pytest.skip("cage is not installed (make test installs it)")
    (bin_dir / "cage").symlink_to(cage)
    finding = check_kiosk(desktop)
    assert not finding.ok and "cage" not in finding.message
    assert finding.message.startswith("Xwayland is not installed") and finding.fix.startswith("sudo apt install xwayland ")
    xwayland = shutil.which("Xwayland")
    if xwayland is None:
        pytest.skip("xwayland is not installed (make test installs it)")
    (bin_dir / "Xwayland").symlink_to(xwayland)
    assert check_kiosk(desktop).ok


def _program(folder: Path, name: str, version: str = "", status: int = 0) -> Path:
    """A program on the test's PATH that answers --version as the named browser does."""
    path = folder / name
    path.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && echo '{version}'\nexit {status}\n")
    path.chmod(0o755)
    return path


def test_a_browser_that_is_not_chromium_is_a_fix_in_plain_words(setup, tmp_path):
    """The launcher drives every page over Chromium's DevTools pipe: Firefox cannot show a card's page."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _program(bin_dir, "firefox", "Mozilla Firefox 128.3.1esr")
    setup(browser={"command": ["firefox", "--kiosk"]})
    finding = check_browser(load_config(), Machine(path=str(bin_dir)))
    assert not finding.ok
    assert "firefox" in finding.message and "only Chromium has" in finding.message and "Firefox" in finding.message
    assert "sudo apt install chromium" in finding.fix and "browser.command" in finding.fix
    text = line(doctor(dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")), "Browser")
    assert text.startswith("FIX   Browser: the browser firefox (browser.command) cannot show cards' pages")

    # Behind the system's link to "the browser": whatever it points at is what runs.
    (bin_dir / "x-www-browser").symlink_to(bin_dir / "firefox")
    setup(browser={"command": ["x-www-browser"]})
    assert not check_browser(load_config(), Machine(path=str(bin_dir))).ok
    (bin_dir / "x-www-browser").unlink()
    (bin_dir / "x-www-browser").symlink_to(_program(bin_dir, "chromium", "Chromium 120.0.6099.224 built on Debian 12.4"))
    assert check_browser(load_config(), Machine(path=str(bin_dir))).ok


def test_a_browser_of_unknown_name_is_asked_its_version(setup, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _program(bin_dir, "kiosk-browser", "Chromium 120.0.6099.224 built on Debian 12.4")  # a wrapper script
    _program(bin_dir, "other-browser", "GNOME Web 43.1")
    _program(bin_dir, "silent-browser", status=1)
    machine = Machine(path=str(bin_dir))
    setup(browser={"command": ["kiosk-browser", "--kiosk"]})
    finding = check_browser(load_config(), machine)
    assert finding.ok and "Chromium 120" in finding.message
    setup(browser={"command": ["other-browser"]})
    finding = check_browser(load_config(), machine)
    assert not finding.ok and "it says it is GNOME Web 43.1" in finding.message
    setup(browser={"command": ["silent-browser"]})
    finding = check_browser(load_config(), machine)
    assert not finding.ok and "it is not Chromium or a browser built on it" in finding.message


def test_chromium_and_the_demos_stand_in_are_fine(setup):
    machine = Machine(path=os.environ["PATH"])
    finding = check_browser(load_config(), machine)  # the fixture's: the demo's stand-in
    assert finding.ok and "launcher.demo_browser" in finding.message
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (make test installs it)")
    setup(browser={"command": ["chromium", "--kiosk"]})
    assert check_browser(load_config(), machine).ok
    setup(browser={"command": [os.path.realpath(shutil.which("chromium"))]})
    assert check_browser(load_config(), machine).ok


def test_the_waiting_chime_without_aplay_or_paplay_names_the_debian_package(setup, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    machine = Machine(path=str(bin_dir))
    assert check_sound(load_config(), machine).ok  # the fixture turns the waiting indicator off
    setup(calls={"waiting_poll_s": 15})
    finding = check_sound(load_config(), machine)
    assert not finding.ok and "calls.waiting_poll_s: 15" in finding.message and "neither aplay nor paplay" in finding.message
    assert finding.fix.startswith("sudo apt install alsa-utils") and "pulseaudio-utils" in finding.fix
    assert "calls.waiting_poll_s: 0" in finding.fix
    text = line(doctor(dict(os.environ, PATH=str(bin_dir))), "Sound")
    assert text.startswith("FIX   Sound: ") and "→ sudo apt install alsa-utils" in text
    _program(bin_dir, "aplay")
    finding = check_sound(load_config(), machine)
    assert finding.ok and "aplay" in finding.message
    (bin_dir / "aplay").unlink()
    _program(bin_dir, "paplay")
    assert check_sound(load_config(), machine).ok
