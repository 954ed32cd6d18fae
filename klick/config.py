"""Klick's settings: found, read, checked and frozen.

``klick.yaml`` is written by an installer, maybe on the tablet itself over ssh. Every setting has
a default, so an empty file (or none) is a working appliance; a wrong setting is reported with
its file, line and the fix, and the tools exit with status 2.

Search order (DESIGN.md): ``--config FILE``, ``$KLICK_HOME/klick.yaml``, the user's XDG config
folder, ``/etc/klick/klick.yaml``. Relative paths inside the file are relative to the file's
folder; paths left out default to the data folder (``$KLICK_HOME``, the XDG data folder, or
``/var/lib/klick`` for a config from ``/etc/klick``).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from klick import fields as typed
from klick.problems import FileProblems, Problem
from klick.yamlfile import YamlDoc, line_of, read_yaml

__all__ = [
    "Config",
    "ReaderConfig",
    "DisplayConfig",
    "BrowserConfig",
    "PathsConfig",
    "PilotConfig",
    "CarerConfig",
    "CallsConfig",
    "BridgeConfig",
    "FleetConfig",
    "ConfigError",
    "load_config",
    "find_config_file",
    "shipped_config_dir",
    "TEXT_SIZES",
]

ENV_HOME = "KLICK_HOME"
SYSTEM_CONFIG = Path("/etc/klick/klick.yaml")
SYSTEM_DATA = Path("/var/lib/klick")

#: Words an installer understands, mapped to the scale the launcher applies to its fonts.
TEXT_SIZES = {"normal": 1.0, "large": 1.25, "larger": 1.5}

DEFAULT_BROWSER = (
    "chromium",
    "--kiosk",
    "--noerrdialogs",
    "--disable-session-crashed-bubble",
    "--autoplay-policy=no-user-gesture-required",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--password-store=basic",
    "--disable-pinch",
    "--overscroll-history-navigation=0",
)


class ConfigError(FileProblems):
    """The settings cannot be used; ``problems`` says why, each with file and line."""


@dataclass(frozen=True)
class ReaderConfig:
    driver: str = "sim"
    device: str = ""
    name: str = "reader"
    mode: str = "slot"
    settle_ms: int = 80
    grace_ms: int = 1200
    baudrate: int = 115200


@dataclass(frozen=True)
class DisplayConfig:
    width: int = 1280
    height: int = 800
    left: int = 0
    top: int = 0
    fullscreen: bool = True
    dpi: int = 160
    quit_keys: str = "ctrl+alt+q"


@dataclass(frozen=True)
class BrowserConfig:
    command: tuple[str, ...] = DEFAULT_BROWSER
    profile: Path = Path("browser-profile")
    call_profile: Path = Path("browser-call-profile")
    #: Seconds a page may take to load before the resident is told it could not open.
    load_timeout_s: int = 20


@dataclass(frozen=True)
class PathsConfig:
    home: Path = Path(".")
    registry: Path = Path("cards.yaml")
    usage_db: Path = Path("usage.db")
    questionnaire: Path = Path("questionnaire.yaml")
    socket: Path = Path("bridge.sock")


@dataclass(frozen=True)
class PilotConfig:
    device_name: str = ""
    enrolled: bool = False
    consent_date: _dt.date | None = None
    export_key: str = ""
    retention_days: int = 365


@dataclass(frozen=True)
class CarerConfig:
    pin_hash: str = ""


@dataclass(frozen=True)
class BridgeConfig:
    #: Local programs that may listen to the bridge at once; past this the oldest idle one goes.
    max_clients: int = 64


@dataclass(frozen=True)
class CallsConfig:
    #: The only call servers that get the camera and microphone (origins, https://host[:port]).
    allowed_servers: tuple[str, ...] = ()
    #: Seconds between asks whether someone waits in a call card's room (0: never ask).
    waiting_poll_s: int = 15


@dataclass(frozen=True)
class FleetConfig:
    #: The municipality's MQTT broker; the fleet (``klick fleet``) is off while this is empty.
    host: str = ""
    port: int = 8883
    ca_file: Path = Path("fleet-ca.pem")
    #: The device's user on the broker; empty means the device's name (pilot.device_name).
    username: str = ""
    password_file: Path = Path("fleet-password")
    state_every_s: int = 300
    #: Rows the broker has not acknowledged yet are kept past retention for at most this long.
    max_backlog_days: int = 90
    #: Free-text answers leave the tablet only when this says so.
    include_free_text: bool = False
    #: The municipality's public key (``klick fleet keygen``): the tablet takes a pushed card set or
    #: questionnaire only when this key's private half signed it. Empty: no pushes are taken.
    signing_key: str = ""
    #: At the office: the private key that signs pushes (``klick fleet keygen`` writes it, mode 0600).
    office_key_file: Path = Path("fleet-office.key")
    #: At the office: the tablets of each group, for ``klick fleet push ... --group``.
    groups_file: Path = Path("fleet-groups.yaml")


@dataclass(frozen=True)
class Config:
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    locale: str = "sv"
    text_size: str = "normal"
    speech: bool = False
    help_contact: str = ""
    display: DisplayConfig = field(default_factory=DisplayConfig)
    browser: BrowserConfig = field(default_factory=BrowserConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    pilot: PilotConfig = field(default_factory=PilotConfig)
    carer: CarerConfig = field(default_factory=CarerConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    #: The file the settings came from, or None when every setting is a default.
    source: Path | None = None
    #: "reader.mode" → "klick.yaml:12" or "default", for ``klick config show``.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def text_scale(self) -> float:
        return TEXT_SIZES[self.text_size]

    def flat(self) -> list[tuple[str, Any]]:
        """Every setting as (dotted name, value), in file order, for display."""
        out: list[tuple[str, Any]] = []
        for f in fields(self):
            if f.name in ("source", "origins"):
                continue
            value = getattr(self, f.name)
            if hasattr(value, "__dataclass_fields__"):
                for sub in fields(value):
                    out.append((f"{f.name}.{sub.name}", getattr(value, sub.name)))
            else:
                out.append((f.name, value))
        return out


# --- the schema: one checker per setting ------------------------------------------------------
# Each checker takes the setting's YAML node and returns its value or raises typed.Wrong, whose
# words follow the setting's dotted name ("reader.mode must be "slot" or "tap", not "slto"").

Checker = Callable[[yaml.Node], Any]
#: A pilot key shorter than this can be guessed back from the hashes it makes.
MIN_EXPORT_KEY = 16
#: How to make a good pilot key, in every message that refuses one.
MAKE_A_KEY = 'python3 -c "import secrets; print(secrets.token_urlsafe(24))"'


def _choice(*options: str) -> Checker:
    listed = " or ".join(f'"{o}"' for o in options) if len(options) <= 3 else ", ".join(f'"{o}"' for o in options)

    def check(node: yaml.Node) -> str:
        return typed.choice(node, options, listed=listed)

    return check


def _int(low: int, high: int) -> Checker:
    def check(node: yaml.Node) -> int:
        return typed.whole(node, low, high)

    return check


def _bool(node: yaml.Node) -> bool:
    return typed.flag(node)


def _text(node: yaml.Node) -> str:
    return typed.text(node)


def _path(node: yaml.Node) -> Path:
    try:
        value = typed.text(node, expected="a file path")
    except typed.Wrong as exc:
        if exc.kind == "hidden":
            raise
        raise typed.Wrong(f"must be a file path, not {exc.got}") from None
    if not value.strip():
        raise typed.Wrong(f"must be a file path, not {typed.show(node)}")
    return Path(os.path.expanduser(value))


def _argv(node: yaml.Node) -> tuple[str, ...]:
    try:
        return typed.words(node)
    except typed.Wrong as exc:
        if exc.kind == "string":
            raise typed.Wrong(
                "must be a list of words, one per line starting with '- ', not one string (Klick never runs a shell)"
            ) from None
        if exc.kind == "hidden":
            raise
        raise typed.Wrong("must be a list of words, one per line starting with '- '", at=exc.at) from None


def _date(node: yaml.Node) -> _dt.date | None:
    return typed.date(node)


def _export_key(node: yaml.Node) -> str:
    value = typed.text(node)
    if value and len(value) < MIN_EXPORT_KEY:
        raise typed.Wrong(
            f"is {len(value)} characters long; a pilot key needs at least {MIN_EXPORT_KEY}, or card IDs can be "
            f"guessed back from the export. Make one with: {MAKE_A_KEY}",
            kind="range",
        )
    return value


def _public_key(node: yaml.Node) -> str:
    import binascii

    value = typed.text(node).strip()
    if not value:
        return ""
    try:
        raw = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise typed.Wrong(
            "must be the public key `klick fleet keygen` printed (44 characters ending in =), "
            f"not {len(value)} characters (and never the private key)",
            kind="range",
        )
    return value


def _servers(node: yaml.Node) -> tuple[str, ...]:
    from klick.calls import CallServerError, call_origin

    if typed.is_null(node):
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise typed.Wrong("must be a list of call servers, one per line starting with '- ', such as - https://meet.example.se")
    out = []
    for item in node.value:
        try:
            text = typed.text(item)
            if "@" in text:
                raise typed.Wrong(
                    f'has an entry with a user name or password in it ("{text}"); list the server alone, such as '
                    "https://meet.example.se",
                    at=item,
                )
            out.append(call_origin(text))
        except typed.Wrong as exc:
            if exc.at is not None:
                raise
            raise typed.Wrong(f"has an entry that is not a call server: it {exc}", at=item) from None
        except CallServerError as exc:
            raise typed.Wrong(f"has an entry that is not a call server: {exc}", at=item) from None
    return tuple(dict.fromkeys(out))


_SECTIONS: dict[str, tuple[type, dict[str, Checker]]] = {
    "reader": (
        ReaderConfig,
        {
            "driver": _choice("sim", "serial", "nfc", "hid"),
            "device": _text,
            "name": _text,
            "mode": _choice("slot", "tap"),
            "settle_ms": _int(0, 5000),
            "grace_ms": _int(0, 60000),
            "baudrate": _int(1200, 4_000_000),
        },
    ),
    "display": (
        DisplayConfig,
        {
            "width": _int(320, 10000),
            "height": _int(240, 10000),
            "left": _int(-10000, 10000),
            "top": _int(-10000, 10000),
            "fullscreen": _bool,
            "dpi": _int(50, 1000),
            "quit_keys": _text,
        },
    ),
    "browser": (
        BrowserConfig,
        {
            "command": _argv,
            "profile": _path,
            "call_profile": _path,
            "load_timeout_s": _int(5, 300),
        },
    ),
    "paths": (
        PathsConfig,
        {
            "registry": _path,
            "usage_db": _path,
            "questionnaire": _path,
            "socket": _path,
        },
    ),
    "pilot": (
        PilotConfig,
        {
            "device_name": _text,
            "enrolled": _bool,
            "consent_date": _date,
            "export_key": _export_key,
            "retention_days": _int(1, 3650),
        },
    ),
    "carer": (
        CarerConfig,
        {
            "pin_hash": _text,
        },
    ),
    "bridge": (
        BridgeConfig,
        {
            "max_clients": _int(1, 1000),
        },
    ),
    "calls": (
        CallsConfig,
        {
            "allowed_servers": _servers,
            "waiting_poll_s": _int(0, 3600),
        },
    ),
    "fleet": (
        FleetConfig,
        {
            "host": _text,
            "port": _int(1, 65535),
            "ca_file": _path,
            "username": _text,
            "password_file": _path,
            "state_every_s": _int(1, 86400),
            "max_backlog_days": _int(1, 3650),
            "include_free_text": _bool,
            "signing_key": _public_key,
            "office_key_file": _path,
            "groups_file": _path,
        },
    ),
}

_TOP: dict[str, Checker] = {
    "locale": _choice("sv", "en"),
    "text_size": _choice(*TEXT_SIZES),
    "speech": _bool,
    "help_contact": _text,
}

_PATH_FIELDS = {
    ("paths", "registry"),
    ("paths", "usage_db"),
    ("paths", "questionnaire"),
    ("paths", "socket"),
    ("browser", "profile"),
    ("browser", "call_profile"),
    ("fleet", "ca_file"),
    ("fleet", "password_file"),
    ("fleet", "office_key_file"),
    ("fleet", "groups_file"),
}


# --- finding and loading ----------------------------------------------------------------------


def shipped_config_dir() -> Path | None:
    """The repository's ``config/`` folder (shipped defaults), when running from a checkout."""
    here = Path(__file__).resolve().parent.parent / "config"
    return here if here.is_dir() else None


def _xdg_config_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("klick")) / "klick.yaml"


def _xdg_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("klick"))


def find_config_file(explicit: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The settings file to read, in DESIGN.md's order; None means "use the defaults"."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    candidates = []
    if env.get(ENV_HOME):
        candidates.append(Path(env[ENV_HOME]) / "klick.yaml")
    candidates += [_xdg_config_file(), SYSTEM_CONFIG]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def data_dir_for(source: Path | None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(ENV_HOME):
        return Path(env[ENV_HOME])
    if source is not None and source.resolve().parent == SYSTEM_CONFIG.parent:
        return SYSTEM_DATA
    return _xdg_data_dir()


def load_config(explicit: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Find, read and check the settings. Raises :class:`ConfigError` with every problem."""
    env = os.environ if env is None else env
    source = find_config_file(explicit, env)
    home = data_dir_for(source, env)
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    top: dict[str, Any] = {}
    origins: dict[str, str] = {}
    base = home
    if source is not None:
        doc = read_yaml(source, what="settings file", display=str(source))
        if explicit and not Path(explicit).exists():
            raise ConfigError([Problem(str(source), None, "the settings file given with --config does not exist")])
        _check(doc, values, top, origins)
        doc.raise_if_errors(ConfigError)
        base = source.resolve().parent
    return _build(values, top, origins, source, base, home)


def _check(doc: YamlDoc, values: dict[str, dict[str, Any]], top: dict[str, Any], origins: dict[str, str]) -> None:
    root = doc.mapping(doc.root, "")
    name = Path(doc.path).name
    doc.unknown_keys(root, set(_SECTIONS) | set(_TOP), "")
    for key, (_key_node, value_node) in root.items():
        if key in _TOP:
            _check_one(doc, key, _TOP[key], value_node, top, origins, name)
        elif key in _SECTIONS:
            _, checkers = _SECTIONS[key]
            section = doc.mapping(value_node, key)
            doc.unknown_keys(section, set(checkers), key)
            for sub, (_, sub_node) in section.items():
                if sub in checkers:
                    _check_one(doc, f"{key}.{sub}", checkers[sub], sub_node, values[key], origins, name, sub)


def _check_one(
    doc: YamlDoc,
    dotted: str,
    checker: Checker,
    node: yaml.Node,
    into: dict[str, Any],
    origins: dict[str, str],
    name: str,
    key: str | None = None,
) -> None:
    try:
        value = checker(node)
    except typed.Wrong as exc:
        doc.error(exc.at or node, f"{dotted} {exc}")
        return
    into[key or dotted] = value
    origins[dotted] = f"{name}:{line_of(node)}"


def _build(
    values: dict[str, dict[str, Any]], top: dict[str, Any], origins: dict[str, str], source: Path | None, base: Path, home: Path
) -> Config:
    parts: dict[str, Any] = {}
    for section, (cls, _) in _SECTIONS.items():
        given = values[section]
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in given:
                value = given[f.name]
                if (section, f.name) in _PATH_FIELDS and not value.is_absolute():
                    value = base / value
                kwargs[f.name] = value
            elif (section, f.name) in _PATH_FIELDS:
                kwargs[f.name] = _default_path(section, f.name, Path(str(f.default)), home, source)
        if section == "paths":
            kwargs["home"] = home
        parts[section] = cls(**kwargs)
    for dotted, _ in Config(**parts, **top).flat():
        origins.setdefault(dotted, "default")
    return Config(**parts, **top, source=source, origins=origins)


def _default_path(section: str, name: str, default: Path, home: Path, source: Path | None) -> Path:
    if (section, name) == ("paths", "questionnaire"):
        for folder in ([source.parent] if source else []) + [home]:
            if (folder / "questionnaire.yaml").is_file():
                return folder / "questionnaire.yaml"
        shipped = shipped_config_dir()
        if shipped is not None:
            return shipped / "questionnaire.yaml"
    return home / default
