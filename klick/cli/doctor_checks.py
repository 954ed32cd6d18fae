"""`klick doctor`: every check an installer would do by hand, each with its finding and its fix.

Each check is a function returning a :class:`Finding` in plain words: what was found and, when
something is wrong, the one thing to do about it. The checks read the machine only through a
:class:`Machine` (PATH, user, groups, the udev folder, the free-space floor), so a test can point
each of them at a temporary world and make it fail by setting up its cause.

The hardware libraries (pyserial, nfcpy, evdev) are imported inside the check that needs them,
so the doctor runs, and says what is missing, on a machine that lacks one of them. A reader the
running bridge already reports as connected is never opened again: probing it would fight the
bridge for the device.

Which checks depend on the machine rather than on Klick's files: the reader (for serial, nfc and
hid), permissions (for those drivers), the bridge, the browser, the kiosk (on an appliance, where
klick-launcher.service is installed), speech (when on), the waiting chime's sound player (when
the waiting indicator is on) and disk space.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klick.config import Config, ConfigError, load_config
from klick.events import CardPresent, CardRemoved, Event, ReaderStatus

__all__ = [
    "Finding",
    "Machine",
    "BridgeView",
    "run_doctor",
    "check_config",
    "check_registry_file",
    "check_reader",
    "check_permissions",
    "check_bridge",
    "check_browser",
    "CHROMIUM_NAMES",
    "check_kiosk",
    "KIOSK_PROGRAMS",
    "check_speech",
    "check_sound",
    "SOUND_PLAYERS",
    "check_disk",
    "check_usage_log",
    "UDEV_RULE",
    "DRIVER_GROUPS",
    "MIN_FREE_BYTES",
    "RFID_WORDS",
]

UDEV_RULE = "99-klick.rules"
#: The group a user needs to open each kind of reader (Debian's names).
DRIVER_GROUPS = {"serial": "dialout", "nfc": "plugdev", "hid": "input"}
#: Below this, the usage log may soon fill the disk.
MIN_FREE_BYTES = 200 * 1024 * 1024
#: Words in an input device's name that suggest a keyboard-style RFID reader.
RFID_WORDS = ("rfid", "nfc", "reader", "card", "125khz", "em4100", "sycreader", "ic reader", "id reader", "08ff:0009")
BRIDGE_TIMEOUT_S = 1.0
NFC_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Finding:
    """One check's result: ``message`` says what was found, ``fix`` what to do when not ``ok``."""

    name: str
    ok: bool
    message: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"OK    {self.name}: {self.message}"
        return f"FIX   {self.name}: {self.message} → {self.fix}"


@dataclass(frozen=True)
class Machine:
    """What the checks ask of the machine; :meth:`current` is this one, tests build their own."""

    path: str = ""
    uid: int = 0
    user: str = ""
    groups: frozenset[str] = frozenset()
    rules_dir: Path = Path("/etc/udev/rules.d")
    units_dir: Path = Path("/etc/systemd/system")
    min_free: int = MIN_FREE_BYTES

    @classmethod
    def current(cls, env: dict[str, str] | None = None) -> Machine:
        env = dict(os.environ) if env is None else env
        uid = os.getuid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        names = set()
        for gid in set(os.getgroups()) | {os.getgid()}:
            try:
                names.add(grp.getgrgid(gid).gr_name)
            except KeyError:
                pass
        return cls(path=env.get("PATH", os.defpath), uid=uid, user=user, groups=frozenset(names))


@dataclass(frozen=True)
class BridgeView:
    """What the bridge said on connect: its reader status and the card in the reader, if any."""

    status: ReaderStatus | None = None
    present: CardPresent | None = None
    events: tuple[Event, ...] = field(default=(), repr=False)


# --- the run -----------------------------------------------------------------------------------


def run_doctor(config_path: str | Path | None = None, machine: Machine | None = None) -> list[Finding]:
    """Every check, in the order an installer reads them. Bad settings stop the rest: every
    other check depends on them."""
    machine = machine or Machine.current()
    cfg, finding = check_config(config_path)
    if cfg is None:
        return [finding]
    bridge, view = check_bridge(cfg)
    return [
        finding,
        check_registry_file(cfg),
        check_reader(cfg, view),
        check_permissions(cfg, machine),
        bridge,
        check_browser(cfg, machine),
        check_kiosk(machine),
        check_speech(cfg, machine),
        check_sound(cfg, machine),
        check_disk(cfg, machine),
        check_usage_log(cfg),
    ]


# --- settings and cards ------------------------------------------------------------------------


def check_config(config_path: str | Path | None = None) -> tuple[Config | None, Finding]:
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        first = exc.problems[0] if exc.problems else None
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return None, Finding(
            "Settings",
            False,
            f"the settings file cannot be used: {first}{more}",
            "fix that line; `klick config check` lists every problem. The other checks wait for it",
        )
    except OSError as exc:
        return None, Finding(
            "Settings",
            False,
            f"the settings file cannot be read: {exc.strerror or exc}",
            "check that the file exists and this user may read it",
        )
    where = str(cfg.source) if cfg.source else "no klick.yaml found, every setting is its default"
    return cfg, Finding("Settings", True, f"{where}; reader driver {cfg.reader.driver}, language {cfg.locale}")


def check_registry_file(cfg: Config) -> Finding:
    from cards.registry import check_registry

    path = cfg.paths.registry
    if not path.exists():
        return Finding(
            "Cards",
            False,
            f"there is no card file at {path}, so no card does anything yet",
            "set up cards with `klick cards add`, or copy a set with `klick cards unpack`",
        )
    try:
        registry, problems = check_registry(path)
    except OSError as exc:
        return Finding(
            "Cards", False, f"the card file {path} cannot be read: {exc.strerror or exc}", "check that this user may read it"
        )
    if registry is None:
        errors = [p for p in problems if p.severity == "error"]
        return Finding(
            "Cards",
            False,
            f"the card file has {len(errors)} problem{'s' if len(errors) != 1 else ''}, the first: {errors[0]}",
            f"`klick cards check {path}` shows every line to fix",
        )
    n = len(registry)
    note = ""
    if registry.warnings:
        note = f" ({len(registry.warnings)} warning{'s' if len(registry.warnings) != 1 else ''}: {registry.warnings[0].message})"
    return Finding("Cards", True, f"{n} card{'s' if n != 1 else ''} in {path}{note}")


# --- the reader --------------------------------------------------------------------------------


def check_reader(cfg: Config, bridge: BridgeView | None = None) -> Finding:
    """Is the configured reader there? The running bridge is asked first; only without one is the
    hardware looked for directly."""
    reader = cfg.reader
    if bridge is not None and bridge.status is not None and bridge.status.reader == reader.name:
        status = bridge.status
        detail = f": {status.detail.rstrip('.')}" if status.detail else ""
        if status.state == "connected":
            return Finding(
                "Reader",
                True,
                f'the bridge reports the {reader.driver} reader "{reader.name}" connected, {status.mode} mode{detail}',
            )
        what = "is still looking for" if status.state == "searching" else "has lost"
        return Finding(
            "Reader", False, f'the bridge {what} the {reader.driver} reader "{reader.name}"{detail}', _reader_fix(reader.driver)
        )
    if reader.driver == "sim":
        return Finding("Reader", True, "the simulated reader (for the demo and tests); it needs no hardware")
    return {"serial": _serial_reader, "nfc": _nfc_reader, "hid": _hid_reader}[reader.driver](cfg)


def _reader_fix(driver: str) -> str:
    return {
        "serial": "check the reader's USB cable, then `klick watch` to see it come back",
        "nfc": "unplug the NFC reader and plug it in again; check its USB cable",
        "hid": "unplug the RFID reader and plug it in again; check its USB cable",
        "sim": "`klick simulate replug`, or restart the bridge",
    }[driver]


def _serial_reader(cfg: Config) -> Finding:
    device = cfg.reader.device
    ports = _serial_ports()
    listed = ", ".join(f"{dev} ({desc})" if desc and desc != "n/a" else dev for dev, desc in ports) if ports else ""
    if not device:
        return Finding(
            "Reader",
            False,
            "reader.device is empty, so the bridge does not know where the serial reader is",
            "set reader.device in klick.yaml to /dev/klick-reader (the udev rule's name)"
            + (f" or one of: {listed}" if listed else ""),
        )
    if not os.path.exists(device):
        found = f"serial ports on this machine: {listed}" if listed else "there are no serial ports on this machine at all"
        return Finding(
            "Reader",
            False,
            f"there is no serial device at {device}; {found}",
            "plug the reader in" + (", or set reader.device to the right port" if listed else " and check its USB cable"),
        )
    real = os.path.realpath(device)
    desc = next((d for dev, d in ports if os.path.realpath(dev) == real and d and d != "n/a"), "")
    return Finding("Reader", True, f"the serial reader is at {device}" + (f" ({desc})" if desc else ""))


def _serial_ports() -> list[tuple[str, str]]:
    from firmware_bridge.serial_driver import list_serial_ports

    return list_serial_ports()


def _nfc_reader(cfg: Config) -> Finding:
    path = cfg.reader.device or "usb"
    from firmware_bridge.nfc_driver import nfcpy_installed, probe

    if not nfcpy_installed():
        return Finding(
            "Reader",
            False,
            "nfcpy, which talks to NFC readers, is not installed",
            "reinstall Klick (`make venv`), which installs nfcpy",
        )
    outcome = _within(NFC_PROBE_TIMEOUT_S, lambda: probe(path))
    if outcome is None:
        return Finding(
            "Reader",
            False,
            f'the NFC reader at "{path}" did not answer within {NFC_PROBE_TIMEOUT_S:.0f} s',
            "unplug the reader and plug it in again",
        )
    ok, detail = outcome
    if ok:
        return Finding("Reader", True, f'the NFC reader answers at "{path}" ({detail})')
    return Finding(
        "Reader",
        False,
        f'no NFC reader found at "{path}": {detail}',
        "plug the reader in, or set reader.device (e.g. usb, usb:072f:2200 or tty:USB0:pn532)",
    )


def _within(seconds: float, job: Callable[[], Any]) -> Any:
    """Run a probe that may hang on a bad device; None if it has not finished in time."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(job()), daemon=True, name="klick-doctor-probe")
    thread.start()
    thread.join(seconds)
    return result[0] if result else None


def _hid_reader(cfg: Config) -> Finding:
    device = cfg.reader.device
    try:
        candidates = _input_devices()
    except ImportError:
        return Finding(
            "Reader",
            False,
            "python-evdev, which reads keyboard-style readers, is not installed",
            "reinstall Klick (`make venv`), which installs evdev",
        )
    looks = [(path, name) for path, name in candidates if any(w in name.lower() for w in RFID_WORDS)]
    listed = ", ".join(f"{path} ({name})" for path, name in looks)
    if not device:
        return Finding(
            "Reader",
            False,
            "reader.device is empty, so the bridge does not know which input device is the reader",
            f"set reader.device to {'one of: ' + listed if looks else 'the reader under /dev/input/by-id/'}",
        )
    if not os.path.exists(device):
        found = (
            f"input devices that look like RFID readers: {listed}" if looks else "no input device here looks like an RFID reader"
        )
        return Finding(
            "Reader",
            False,
            f"there is no input device at {device}; {found}",
            "plug the reader in" + (", or set reader.device to it" if looks else ""),
        )
    real = os.path.realpath(device)
    name = next((n for p, n in candidates if os.path.realpath(p) == real), "")
    return Finding("Reader", True, f"the keyboard-style reader is at {device}" + (f" ({name})" if name else ""))


def _input_devices() -> list[tuple[str, str]]:
    from firmware_bridge.hid_driver import input_devices

    return input_devices()


# --- permissions -------------------------------------------------------------------------------


def check_permissions(cfg: Config, machine: Machine) -> Finding:
    """The group the driver needs, and the udev rule that names the reader and sets its access."""
    driver = cfg.reader.driver
    if driver == "sim":
        return Finding("Permissions", True, "the simulated reader needs no device permissions")
    group = DRIVER_GROUPS[driver]
    problems: list[str] = []
    fixes: list[str] = []
    device = cfg.reader.device
    device_open = bool(device) and os.path.exists(device) and os.access(device, os.R_OK | os.W_OK)
    who = machine.user or str(machine.uid)
    if machine.uid == 0:
        have = "running as root"
    elif group in machine.groups:
        have = f"{who} is in the {group} group"
    elif device_open:
        have = f"{who} may open {device}"
    else:
        have = ""
        problems.append(f"the user {who} is not in the {group} group, so it may not open the {driver} reader")
        fixes.append(f"sudo usermod -aG {group} {who}, then log out and in again")
    rule = machine.rules_dir / UDEV_RULE
    if not rule.is_file():
        problems.append(f"the udev rule {rule} is missing, so the reader gets neither its fixed name nor its permissions")
        fixes.append(
            f"install it from Klick's config folder (sudo cp {UDEV_RULE} {machine.rules_dir}/ && "
            "sudo udevadm control --reload && sudo udevadm trigger), then plug the reader in again"
        )
    if problems:
        return Finding("Permissions", False, "; ".join(problems), "; ".join(fixes))
    return Finding("Permissions", True, f"{have}, and the udev rule {rule} is there")


# --- the bridge --------------------------------------------------------------------------------


def check_bridge(cfg: Config, timeout: float = BRIDGE_TIMEOUT_S) -> tuple[Finding, BridgeView | None]:
    """Connect to the bridge's socket and read what it says first: its reader status and any card."""
    from klick.bridge_client import BridgeUnavailable, iter_events
    from klick.events import EventError

    path = cfg.paths.socket
    start = "start it: `sudo systemctl start klick-bridge` on the tablet, or `klick bridge` in another terminal on a desktop"
    if not path.exists():
        return Finding("Bridge", False, f"the card reader bridge is not running (no socket at {path})", start), None
    events: list[Event] = []
    try:
        for event in iter_events(path, timeout=timeout):
            events.append(event)
            if len(events) >= 20:
                break
    except BridgeUnavailable as exc:
        return Finding("Bridge", False, str(exc).rstrip("."), start), None
    except TimeoutError:
        pass  # the greeting is over
    except EventError as exc:
        return Finding(
            "Bridge",
            False,
            f"something answers on {path} but does not speak Klick events ({exc})",
            f"stop whatever listens there, then {start}",
        ), None
    except OSError as exc:
        return Finding("Bridge", False, f"the bridge socket {path} cannot be read: {exc.strerror or exc}", start), None
    if not events:
        return Finding(
            "Bridge",
            False,
            f"the bridge answers on {path} but said nothing within {timeout:.0f} s",
            "restart it: `sudo systemctl restart klick-bridge`",
        ), None
    statuses = [e for e in events if isinstance(e, ReaderStatus)]
    status = statuses[-1] if statuses else None
    present: CardPresent | None = None
    for event in events:
        if isinstance(event, CardPresent):
            present = event
        elif isinstance(event, CardRemoved):
            present = None
    view = BridgeView(status, present, tuple(events))
    said = f'reader "{status.reader}" {status.state}' if status else "no reader status yet"
    card = f"; card {present.uid} is in the reader" if present else "; no card in the reader"
    return Finding("Bridge", True, f"the bridge answers on {path}: {said}{card}"), view


# --- programs and disk -------------------------------------------------------------------------


#: Chromium and the browsers built on it, by their programs' names. The launcher opens and watches
#: every page over Chromium's DevTools pipe (``--remote-debugging-pipe``), which no other browser
#: (Firefox, Epiphany …) has, so only these can show a card's page.
CHROMIUM_NAMES = frozenset(
    {
        "chromium",
        "chromium-browser",
        "chrome",
        "google-chrome",
        "google-chrome-stable",
        "google-chrome-beta",
        "google-chrome-unstable",
        "microsoft-edge",
        "microsoft-edge-stable",
        "microsoft-edge-beta",
        "microsoft-edge-dev",
        "brave",
        "brave-browser",
        "vivaldi",
        "vivaldi-stable",
    }
)
#: Browsers known not to be Chromium: no need to ask them.
_NOT_CHROMIUM = frozenset({"firefox", "firefox-esr", "epiphany", "epiphany-browser", "midori", "falkon", "konqueror", "surf"})
#: How a Chromium-based browser names itself in ``--version`` ("Chromium 120.0.6099.224 built on Debian").
_CHROMIUM_VERSION = re.compile(r"\b(Chromium|Google Chrome|Microsoft Edge|Brave Browser|Vivaldi)\b")
_VERSION_TIMEOUT_S = 5.0
_USE_CHROMIUM = (
    "sudo apt install chromium, and set browser.command in klick.yaml to chromium (or leave it out: chromium is the default)"
)


def check_browser(cfg: Config, machine: Machine) -> Finding:
    command = cfg.browser.command
    if len(command) >= 3 and command[1:3] == ("-m", "launcher.demo_browser"):
        return Finding(
            "Browser", True, "the demo's stand-in (launcher.demo_browser): it opens no page; install chromium to see them"
        )
    program = command[0]
    found = shutil.which(program, path=machine.path)
    if not found:
        return Finding(
            "Browser",
            False,
            f"the browser {program} (browser.command) is not installed here",
            "install it (sudo apt install chromium), or set browser.command in klick.yaml to a browser that is",
        )
    # Its own name, and the name behind a link such as x-www-browser → /etc/alternatives → firefox-esr.
    names = {Path(program).name, Path(found).name, Path(os.path.realpath(found)).name}
    if names & CHROMIUM_NAMES:
        return Finding("Browser", True, f"{program} is installed ({found}) and is Chromium, as Klick needs")
    said = "" if names & _NOT_CHROMIUM else _version_of(found)
    if _CHROMIUM_VERSION.search(said):
        return Finding("Browser", True, f"{program} is installed ({found}) and is Chromium-based ({said})")
    what = f"it says it is {said}" if said else "it is not Chromium or a browser built on it"
    return Finding(
        "Browser",
        False,
        f"the browser {program} (browser.command) cannot show cards' pages: {what}. Klick opens and watches "
        "every page through a channel only Chromium has, so Firefox and other browsers cannot work",
        _USE_CHROMIUM,
    )


def _version_of(program: str) -> str:
    """The first line ``program --version`` prints (a wrapper script may stand for Chromium), or ""."""
    try:
        done = subprocess.run(
            [program, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_VERSION_TIMEOUT_S,
            start_new_session=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    return lines[0].strip()[:120] if done.returncode == 0 and lines else ""


#: What the kiosk session (klick-launcher.service) runs on, each with the Debian package it is
#: in and why: cage owns the screen; the launcher's window is an X11 one (Kivy's SDL has no
#: Wayland driver), which cage can only show through XWayland.
KIOSK_PROGRAMS = (
    ("cage", "cage", "the kiosk compositor that owns the screen"),
    ("Xwayland", "xwayland", "the launcher draws through it; without it the screen stays black"),
)


def check_kiosk(machine: Machine) -> Finding:
    unit = machine.units_dir / "klick-launcher.service"
    if not unit.is_file():
        return Finding("Kiosk", True, f"{unit.name} is not installed, so this is no kiosk: the launcher runs in your own session")
    missing = [(name, package, why) for name, package, why in KIOSK_PROGRAMS if not shutil.which(name, path=machine.path)]
    if missing:
        return Finding(
            "Kiosk",
            False,
            "; ".join(f"{name} is not installed ({why})" for name, _, why in missing),
            "sudo apt install " + " ".join(package for _, package, _ in missing) + " (or: sudo make install-appliance)",
        )
    return Finding("Kiosk", True, "cage and XWayland are installed: the launcher fills whatever screen cage gives it")


def check_speech(cfg: Config, machine: Machine) -> Finding:
    if not cfg.speech:
        return Finding("Speech", True, "speech is off (speech: false), so espeak-ng is not needed")
    found = shutil.which("espeak-ng", path=machine.path)
    if found:
        return Finding("Speech", True, f"speech is on and espeak-ng is installed ({found})")
    return Finding(
        "Speech",
        False,
        "speech is on (speech: true) but espeak-ng is not installed, so labels are not read aloud",
        "sudo apt install espeak-ng, or set speech: false in klick.yaml",
    )


#: What plays the waiting chime (launcher.actions.CHIME_PLAYERS), with the Debian package of each.
SOUND_PLAYERS = (("paplay", "pulseaudio-utils"), ("aplay", "alsa-utils"))


def check_sound(cfg: Config, machine: Machine) -> Finding:
    """The soft chime when someone waits in a call card's room needs PulseAudio's paplay or ALSA's aplay."""
    poll = cfg.calls.waiting_poll_s
    if poll <= 0:
        return Finding("Sound", True, "the waiting indicator is off (calls.waiting_poll_s: 0), so no chime is played")
    for player, _package in SOUND_PLAYERS:
        found = shutil.which(player, path=machine.path)
        if found:
            return Finding("Sound", True, f"the chime when someone is waiting plays with {player} ({found})")
    return Finding(
        "Sound",
        False,
        "the tablet chimes when someone waits in a call card's room (calls.waiting_poll_s: "
        f"{poll}), but neither aplay nor paplay is installed, so it stays silent",
        "sudo apt install alsa-utils (or pulseaudio-utils on a desktop with PulseAudio), "
        "or set calls.waiting_poll_s: 0 in klick.yaml to turn the waiting indicator off",
    )


def check_disk(cfg: Config, machine: Machine) -> Finding:
    folder = cfg.paths.usage_db.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError as exc:
        return Finding(
            "Disk",
            False,
            f"cannot tell the free space for the usage log in {folder}: {exc.strerror or exc}",
            "check that the folder exists and this user may read it",
        )
    if not os.access(existing, os.W_OK):
        return Finding(
            "Disk",
            False,
            f"this user may not write the usage log in {existing}",
            "give the klick user that folder (sudo chown), or set paths.usage_db to a folder it owns",
        )
    if free < machine.min_free:
        return Finding(
            "Disk",
            False,
            f"only {_size(free)} free for the usage log in {folder} (want {_size(machine.min_free)})",
            "free some space, or set paths.usage_db to a bigger disk",
        )
    return Finding("Disk", True, f"{_size(free)} free for the usage log in {folder}")


def check_usage_log(cfg: Config) -> Finding:
    """The usage log: sound, or moved aside as damaged by the launcher, or a file Klick will not touch.

    Read-only (the launcher may be writing); quick_check reads the whole file, which is fine here.
    """
    from klick.usage import UsageDbError, damaged_copies, inspect_file

    path = cfg.paths.usage_db
    copies = damaged_copies(path)
    if copies:
        newest = copies[-1]
        more = f" (and {len(copies) - 1} older)" if len(copies) > 1 else ""
        return Finding(
            "Usage log",
            False,
            f"the usage log was found damaged and moved aside as {newest}{more}; Klick started a new one by itself",
            f"if the pilot wants its rows, give {newest.name} to the pilot staff, then delete it (rm {newest}*); "
            "if it happens again, the SD card is failing: replace it",
        )
    try:
        found = inspect_file(path)
    except UsageDbError as exc:
        return Finding(
            "Usage log", False, str(exc), "move that file aside (mv it to another name); usage is not recorded until then"
        )
    if found.state == "damaged":
        return Finding(
            "Usage log",
            False,
            f"{path} is damaged ({found.reason})",
            "restart the launcher (sudo systemctl restart klick-launcher): it moves the file aside and starts a new log",
        )
    if found.state == "new":
        return Finding("Usage log", True, f"no usage log yet at {path}; the launcher starts one")
    if found.state == "unsure":
        return Finding("Usage log", True, f"{path} is busy and could not be checked now ({found.reason})")
    withdrawn = f"; consent withdrawn on {found.withdrawn_on}, only reader health is kept" if found.withdrawn_on else ""
    return Finding("Usage log", True, f"{path} is sound{withdrawn}")


def _size(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    return f"{n / 1024**2:.0f} MB"
