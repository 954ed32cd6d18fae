"""Hostile input: each attack is refused with a plain message, nothing runs, nothing is lost.

  YAML bombs          a "billion laughs" card file and settings file
  100 MB files        a 100 MB card file, settings file and bundle
  shell metacharacters a command card whose argv holds ; rm -rf, &&, $( ), backticks and |:
                      the program gets them as plain words and no shell ever sees them
  escaping bundles    zips with ../, absolute paths, a symlink, or a card file pointing out
  socket flood        clients that send an endless line, thousands of lines a second, or never
                      read, while a well-behaved client must still get every card event

For each row the value is the start of the message the attack was refused with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import stat
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

GOOD_CARDS = """version: 1
cards:
  - uid: "04A2B3C4D5E680"
    label: Anna
    colour: blue
    action:
      type: web
      url: https://example.se/
"""

Row = tuple[str, str, str, bool]


def _short(text: str, n: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file() and not path.is_symlink():
            h.update(path.read_bytes())
    return h.hexdigest()


# --- files ------------------------------------------------------------------------------------


def yaml_bombs(tmp: Path) -> list[Row]:
    from cards.registry import check_registry
    from klick.config import ConfigError, load_config

    rows = []
    cards = tmp / "bomb-cards.yaml"
    cards.write_text(BOMB)
    started = time.perf_counter()
    registry, problems = check_registry(cards)
    took = time.perf_counter() - started
    ok = registry is None and any("alias" in p.message for p in problems)
    rows.append(
        (
            "hostile: YAML bomb as cards.yaml",
            f"refused in {took:.2f} s: " + _short(problems[0].message if problems else "accepted!"),
            "refused",
            ok,
        )
    )
    settings = tmp / "bomb-klick.yaml"
    settings.write_text(BOMB)
    try:
        load_config(settings)
        rows.append(("hostile: YAML bomb as klick.yaml", "accepted!", "refused", False))
    except ConfigError as exc:
        rows.append(("hostile: YAML bomb as klick.yaml", "refused: " + _short(str(exc)), "refused", "alias" in str(exc)))
    return rows


def huge_files(tmp: Path) -> list[Row]:
    from cards.bundle import BundleError, unpack_bundle
    from cards.registry import check_registry
    from klick.config import ConfigError, load_config

    rows = []
    size = 100 * 1024 * 1024
    big = tmp / "big-cards.yaml"
    with open(big, "wb") as f:  # 100 MB of real text, not a sparse hole
        chunk = b"# " + b"x" * 1021 + b"\n"
        for _ in range(size // len(chunk)):
            f.write(chunk)
    started = time.perf_counter()
    registry, problems = check_registry(big)
    took = time.perf_counter() - started
    rows.append(
        (
            "hostile: 100 MB cards.yaml",
            f"refused in {took:.2f} s: " + _short(problems[0].message if problems else "accepted!"),
            "refused",
            registry is None and bool(problems),
        )
    )
    try:
        load_config(big)
        rows.append(("hostile: 100 MB klick.yaml", "accepted!", "refused", False))
    except ConfigError as exc:
        rows.append(("hostile: 100 MB klick.yaml", "refused: " + _short(str(exc)), "refused", True))
    big.unlink()

    registry_path = tmp / "set" / "cards.yaml"
    registry_path.parent.mkdir()
    registry_path.write_text(GOOD_CARDS)
    before = _digest(registry_path.parent)
    bundle = tmp / "huge.klick"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("cards.yaml", GOOD_CARDS)
        zf.writestr("pictures/huge.png", os.urandom(size))
    try:
        unpack_bundle(bundle, registry_path)
        rows.append(("hostile: 100 MB bundle", "accepted!", "refused", False))
    except BundleError as exc:
        rows.append(
            (
                "hostile: 100 MB bundle",
                "refused: " + _short(str(exc)),
                "refused, nothing changed",
                _digest(registry_path.parent) == before,
            )
        )
    bundle.unlink()
    return rows


# --- a command card full of shell metacharacters ----------------------------------------------


def shell_metacharacters(tmp: Path) -> list[Row]:
    from cards.registry import load_registry
    from klick.config import load_config
    from launcher.actions import External, plan, start_program

    out = tmp / "argv.json"
    victims = [tmp / f"victim{i}" for i in range(5)]
    words = [
        "; touch " + str(victims[0]),
        "&& touch " + str(victims[1]),
        "$(touch " + str(victims[2]) + ")",
        "`touch " + str(victims[3]) + "`",
        "| touch " + str(victims[4]),
        "; rm -rf " + str(tmp),
        "*",
        "~",
    ]
    program = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    argv = [sys.executable, "-c", program, str(out), *words]
    cards = tmp / "cmd" / "cards.yaml"
    cards.parent.mkdir()
    cards.write_text(
        'version: 1\ncards:\n  - uid: "0A0B0C0D"\n    label: Kommando\n    colour: green\n'
        "    action:\n      type: command\n      argv: " + json.dumps(argv) + "\n"
    )
    card = load_registry(cards).get("0A0B0C0D")
    step = plan(card.action, load_config())
    assert isinstance(step, External)
    running = start_program(step.argv, step.program)
    running.proc.wait(20)
    got = json.loads(out.read_text()) if out.exists() else None
    nothing_ran = not any(v.exists() for v in victims) and tmp.exists()
    ok = got == words and nothing_ran
    return [
        (
            "hostile: command card with ; rm -rf, &&, $( ), ` `, |",
            "ran its argv only, as plain words" if ok else f"got {got!r}, side effects: {not nothing_ran}",
            "nothing else runs",
            ok,
        )
    ]


# --- bundles that try to leave their folder ---------------------------------------------------


def escaping_bundles(tmp: Path) -> list[Row]:
    from cards.bundle import BundleError, unpack_bundle

    registry_path = tmp / "set2" / "cards.yaml"
    registry_path.parent.mkdir()
    registry_path.write_text(GOOD_CARDS)
    outside = tmp / "escaped.txt"
    cases: dict[str, list[tuple[str, bytes, int | None]]] = {
        "'../' in a name": [("cards.yaml", GOOD_CARDS.encode(), None), ("pictures/../../escaped.txt", b"x", None)],
        "an absolute path": [("cards.yaml", GOOD_CARDS.encode(), None), (str(outside), b"x", None)],
        "a symbolic link": [
            ("cards.yaml", GOOD_CARDS.encode(), None),
            ("pictures/link.png", str(outside).encode(), stat.S_IFLNK | 0o777),
        ],
        "a card picture outside": [
            ("cards.yaml", GOOD_CARDS.replace("    action:", f"    picture: {tmp}/../../etc/passwd\n    action:").encode(), None)
        ],
    }
    rows = []
    for label, entries in cases.items():
        before = _digest(registry_path.parent)
        bundle = tmp / "evil.klick"
        with zipfile.ZipFile(bundle, "w") as zf:
            for name, data, mode in entries:
                info = zipfile.ZipInfo(name)
                if mode is not None:
                    info.create_system = 3
                    info.external_attr = mode << 16
                zf.writestr(info, data)
        try:
            unpack_bundle(bundle, registry_path)
            rows.append((f"hostile: bundle with {label}", "accepted!", "refused", False))
        except BundleError as exc:
            unchanged = _digest(registry_path.parent) == before and not outside.exists()
            rows.append((f"hostile: bundle with {label}", "refused: " + _short(str(exc)), "refused, nothing changed", unchanged))
        bundle.unlink()
    return rows


# --- clients flooding the bridge's socket -----------------------------------------------------


class _Driver:
    """A reader whose field the soak controls through a queue."""

    def __init__(self, steps) -> None:
        self.steps = steps

    def __call__(self, reader, sink):
        self.sink = sink
        return self

    def run(self, stop: threading.Event) -> None:
        import queue

        self.sink.status("connected", "Soak reader.", "slot")
        while not stop.is_set():
            try:
                kind, uid = self.steps.get(timeout=0.05)
            except queue.Empty:
                continue
            if kind == "seen":
                self.sink.seen(uid, time.monotonic())
            else:
                self.sink.gone(time.monotonic())


class _Log(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def socket_flood(tmp: Path, cards: int = 300) -> list[Row]:
    import queue

    from firmware_bridge.daemon import Bridge
    from klick.bridge_client import iter_events, request
    from klick.config import load_config
    from klick.events import CardPresent, CardRemoved

    short = Path(tempfile.mkdtemp(prefix="klick-flood-", dir="/tmp"))
    cfg = load_config()
    cfg = replace(cfg, reader=replace(cfg.reader, settle_ms=0, grace_ms=0), paths=replace(cfg.paths, socket=short / "b.sock"))
    steps: queue.SimpleQueue = queue.SimpleQueue()
    bridge = Bridge(cfg, driver_factory=_Driver(steps))
    handler = _Log()
    logging.getLogger("klick.bridge").addHandler(handler)
    bridge.open()
    thread = threading.Thread(target=bridge.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    sock_path = cfg.paths.socket
    received: list = []
    good_done = threading.Event()

    def good_client() -> None:
        try:
            for ev in iter_events(sock_path, timeout=20):
                if isinstance(ev, (CardPresent, CardRemoved)):
                    received.append(ev)
                    if len(received) == 2 * cards:
                        break
        finally:
            good_done.set()

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock_path))
        s.settimeout(10)
        return s

    def dropped(s: socket.socket) -> bool:
        try:
            while True:
                if not s.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    rows: list[Row] = []
    try:
        listener = threading.Thread(target=good_client, daemon=True)
        listener.start()
        time.sleep(0.2)
        endless, fast, deaf = connect(), connect(), connect()
        deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        def flood_endless() -> None:
            try:
                for _ in range(64):
                    endless.sendall(b"x" * 65536)  # 4 MB, no newline
            except OSError:
                pass

        def flood_fast() -> None:
            try:
                for _ in range(20000):
                    fast.sendall(b'{"command": "status"}\n')
            except OSError:
                pass

        floods = [threading.Thread(target=flood_endless, daemon=True), threading.Thread(target=flood_fast, daemon=True)]
        for t in floods:
            t.start()
        for i in range(cards):  # meanwhile, cards go in and out
            uid = f"04{i:012X}"
            steps.put(("seen", uid))
            steps.put(("gone", None))
        good_done.wait(30)
        for t in floods:
            t.join(10)
        endless_dropped, fast_dropped = dropped(endless), dropped(fast)
        alive = request(sock_path, {"command": "status"}, timeout=5).get("ok") is True
        expected = [(k, f"04{i:012X}") for i in range(cards) for k in ("in", "out")]
        got = [("in" if isinstance(e, CardPresent) else "out", e.uid) for e in received]
        lost = len(expected) - sum(1 for a, b in zip(expected, got) if a == b)
        long_msg = next((l for l in handler.lines if "longer than" in l), "not dropped!")
        fast_msg = next((l for l in handler.lines if "lines a second" in l), "not dropped!")
        rows += [
            (
                "hostile: socket client sending an endless line",
                "dropped: " + _short(long_msg),
                "dropped",
                endless_dropped and "longer than" in long_msg,
            ),
            (
                "hostile: socket client sending 20,000 lines at once",
                "dropped: " + _short(fast_msg),
                "dropped",
                fast_dropped and "lines a second" in fast_msg,
            ),
            (f"hostile: card events lost by a good client meanwhile (of {len(expected)})", str(lost), "0", lost == 0 and alive),
        ]
        for s in (endless, fast, deaf):
            s.close()
    finally:
        bridge.stop()
        thread.join(10)
        logging.getLogger("klick.bridge").removeHandler(handler)
        for child in short.iterdir():
            child.unlink()
        short.rmdir()
    return rows


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="klick-soak-hostile-") as tmp:
        t = Path(tmp)
        rows += yaml_bombs(t)
        if not quick:
            rows += huge_files(t)
        rows += shell_metacharacters(t)
        rows += escaping_bundles(t)
        rows += socket_flood(t, cards=300 if not quick else 100)
    return rows
