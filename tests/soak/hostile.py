"""Hostile input: each attack is refused with a plain message, nothing runs, nothing is lost.

  YAML bombs          a "billion laughs" card file and settings file
  100 MB files        a 100 MB card file, settings file and bundle
  shell metacharacters a command card whose argv holds ; rm -rf, &&, $( ), backticks and |:
                      the program gets them as plain words and no shell ever sees them
  escaping bundles    zips with ../, absolute paths, a symlink, or a card file pointing out
  socket flood        clients that send an endless line, thousands of lines a second, or never
                      read, while a well-behaved client must still get every card event
  hostile clients     a real `klick bridge` process with a low open-file limit: poison lines
                      (4,000 ``[``, a lone surrogate, wrong types), then 1,100 connections at
                      once; the bridge must live, stay cheap and quiet, and a launcher client
                      must get every card event meanwhile

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


# --- a real bridge process against hostile clients ---------------------------------------------

#: Lines that once ended the bridge (deep nesting, a lone surrogate) or are simply wrong.
POISON = [
    b"[" * 4000,
    b'{"a":' * 3000,
    b'{"command":"\\ud800"}',
    b'{"command":"insert","uid":"\\udfff"}',
    b'{"command":"hello","client":"\\ud800"}',
    b'{"command":"hello","client":{"a":[1,2]}}',
    b'{"command":5}',
    b'{"command":"insert","uid":["04A2"]}',
    b'{"command":"insert","uid":"123"}',
    b'{"command":"status","x":1e999999}',
    b'{"command":"status","x":' + b"1" * 4050 + b"}",
    b'{"command":"' + b"\\" * 2000 + b'"}',
    b'"' + b"\\u" * 1300 + b'"',
    b"\xff\xfe\xfd",
    b"\x00" * 100,
    b"NaN",
]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lower_nofile(limit: int):
    import resource

    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return set_limit


class BridgeProcess:
    """`klick bridge --driver sim` as a real process, its log in a file, optionally with few file descriptors."""

    def __init__(self, folder: Path, nofile: int | None = None, max_clients: int = 64) -> None:
        import subprocess

        from klick.bridge_client import BridgeUnavailable, request

        self.folder = folder
        self.socket = folder / "b.sock"
        self.log = folder / "bridge.log"
        (folder / "klick.yaml").write_text(
            f"reader:\n  settle_ms: 0\n  grace_ms: 0\nbridge:\n  max_clients: {max_clients}\npaths:\n  socket: {self.socket}\n"
        )
        env = dict(os.environ, KLICK_HOME=str(folder))
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from klick.cli import main; main()", "bridge", "--driver", "sim"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                preexec_fn=_lower_nofile(nofile) if nofile else None,
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(self.socket, {"command": "status"}, timeout=2).get("state") == "connected":
                    return
            except (BridgeUnavailable, TimeoutError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bridge did not start: {self.log.read_text()}")
            time.sleep(0.05)

    @property
    def alive(self) -> bool:
        from klick.bridge_client import BridgeUnavailable, request

        if self.proc.poll() is not None:
            return False
        try:
            return request(self.socket, {"command": "status"}, timeout=5).get("ok") is True
        except (BridgeUnavailable, TimeoutError):
            return False

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def log_lines(self) -> int:
        """Lines in the log other than the one line per card event the bridge always writes."""
        lines = self.log.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if not line.startswith(("INFO card in", "INFO card out")))

    def stop(self) -> int:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Launcher:
    """A well-behaved client that says it is the launcher and counts the card events it gets."""

    def __init__(self, path: Path) -> None:
        import queue

        from klick.bridge_client import BridgeClient
        from klick.events import ReaderStatus

        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.links: queue.SimpleQueue = queue.SimpleQueue()
        self.client = BridgeClient(path, self.events.put, self.links.put, hello="launcher")
        self.client.start()
        if self.links.get(timeout=10) is not True or not isinstance(self.events.get(timeout=10), ReaderStatus):
            raise RuntimeError("the launcher client did not connect")
        deadline = time.monotonic() + 10
        while self.client.kept is not True:  # the bridge has taken our hello: it will keep us
            if time.monotonic() > deadline:
                raise RuntimeError("the bridge did not answer the launcher's hello")
            time.sleep(0.01)
        self.reconnects = 0

    def card(self, uid: str, timeout: float = 10.0) -> bool:
        """Put card ``uid`` in and take it out through the bridge; True if both events came back."""
        import queue

        from klick.events import CardPresent, CardRemoved

        want = [("in", uid), ("out", uid)]
        got: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        for command in ({"command": "insert", "uid": uid}, {"command": "remove"}):
            while not self.client.send(command):
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            expect = want[len(got)]
            while len(got) < 2 and got[-1:] != [expect]:
                try:
                    event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    return False
                if isinstance(event, (CardPresent, CardRemoved)):
                    got.append(("in" if isinstance(event, CardPresent) else "out", event.uid))
        while not self.links.empty():
            self.reconnects += self.links.get() is False
        return got == want

    def stop(self) -> None:
        self.client.stop()


def _poison(path: Path, line: bytes) -> str:
    """Send one poison line, then a status command, from a fresh client: what did the bridge do?

    "answered" (a reply to the poison itself), "ignored" (only the status reply came back: the
    line was skipped and the client kept) or "closed" (the bridge let that client go).
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(str(path))
        s.sendall(line + b"\n" + b'{"command":"status"}\n')
        data = b""
        replies: list[dict] = []
        while not any(r.get("reply") == "status" and r.get("state") for r in replies):
            chunk = s.recv(65536)
            if not chunk:
                return "closed"
            data += chunk
            *whole, data = data.split(b"\n")
            replies += [r for r in map(json.loads, whole) if "reply" in r]
        return "answered" if len(replies) > 1 else "ignored"
    except TimeoutError:
        return "no answer"
    except OSError as exc:
        return f"closed ({exc.strerror})"
    finally:
        s.close()


def connection_flood(path: Path, connections: int) -> tuple[list[socket.socket], int]:
    """Open ``connections`` connections as fast as possible and hold them; (held, refused)."""
    held: list[socket.socket] = []
    refused = 0
    for _ in range(connections):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(path))
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
            s.close()
            refused += 1  # the listen queue is full: the bridge is not taking more right now
            time.sleep(0.001)
            continue
        held.append(s)
    return held, refused


def raise_own_nofile(needed: int) -> None:
    """Let this process hold ``needed`` sockets (the flood lives here), as far as the hard limit allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard), hard))


def hostile_clients(folder: Path, connections: int = 1100, nofile: int = 64, cards: int = 20, window: float = 10.0) -> dict:
    """The figures for issue 10 items 3-4: poison lines and a connection flood against a real bridge."""
    raise_own_nofile(connections + 200)
    bridge = BridgeProcess(folder, nofile=nofile)
    launcher = None
    held: list[socket.socket] = []
    try:
        launcher = Launcher(bridge.socket)
        poison = {line[:20]: _poison(bridge.socket, line) for line in POISON}
        survived_poison = bridge.alive
        lines_before, cpu_before, started = bridge.log_lines(), bridge.cpu(), time.monotonic()
        flood_result: list = []
        flood = threading.Thread(target=lambda: flood_result.append(connection_flood(bridge.socket, connections)), daemon=True)
        flood.start()
        delivered = 0
        n = 0
        while n < cards or time.monotonic() - started < window:
            delivered += launcher.card(f"04{n:012X}")
            n += 1
            time.sleep(0.05)
        flood.join(60)
        held, refused = flood_result[0] if flood_result else ([], connections)
        wall = time.monotonic() - started
        cpu = bridge.cpu() - cpu_before
        log_lines = bridge.log_lines() - lines_before
        alive = bridge.alive
        return dict(
            poison=poison,
            survived_poison=survived_poison,
            connections=connections,
            held=len(held),
            refused=refused,
            nofile=nofile,
            cards=n,
            delivered=delivered,
            reconnects=launcher.reconnects,
            cpu=cpu,
            wall=wall,
            log_lines=log_lines,
            log=bridge.log.read_text(errors="replace"),
            alive=alive,
        )
    finally:
        for s in held:
            s.close()
        if launcher is not None:
            launcher.stop()
        bridge.stop()


def hostile_client_rows(quick: bool) -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="klick-hostile-", dir="/tmp"))
    try:
        s = hostile_clients(folder, connections=1100, cards=10 if quick else 40, window=2.0 if quick else 10.0)
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    lost = s["cards"] - s["delivered"]
    share = s["cpu"] / s["wall"]
    return [
        (
            f"hostile clients: bridge alive after {len(POISON)} poison lines (4,000 '[', lone surrogate, ...)",
            "alive" if s["survived_poison"] else "DEAD",
            "alive",
            s["survived_poison"],
        ),
        (
            f"hostile clients: bridge alive after {s['connections']:,} connections (open-file limit {s['nofile']})",
            "alive" if s["alive"] else "DEAD",
            "alive",
            s["alive"],
        ),
        (
            f"hostile clients: bridge CPU during the flood ({s['wall']:.1f} s)",
            f"{s['cpu']:.2f} s ({share:.0%})",
            "< 25 %",
            share < 0.25,
        ),
        ("hostile clients: bridge log lines during the flood", str(s["log_lines"]), "<= 10", s["log_lines"] <= 10),
        (
            f"hostile clients: card events lost by the launcher meanwhile (of {2 * s['cards']})",
            str(2 * lost),
            "0",
            lost == 0 and s["reconnects"] == 0,
        ),
    ]


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
    rows += hostile_client_rows(quick)
    return rows
