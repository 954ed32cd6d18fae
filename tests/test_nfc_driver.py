"""The nfc driver against nfcpy's own ``udp`` radio, with an emulated tag in another process.

nfcpy can emulate a FeliCa (Type 3) tag out of the box: the emulator process below listens
on a free UDP port on 127.0.0.1 as ``LocalTarget('212F')``, and the bridge's nfc driver senses
for it at ``udp:127.0.0.1:PORT``. Killing the emulator is lifting the card.

ISO 14443-A has no emulation in nfcpy; :func:`emulate_type2` is a small NTAG213 responder
over ``clf.listen``/``clf.exchange``, so the 106A path is proven against the same radio.

Run as a script (``python tests/test_nfc_driver.py PORT ID``) this file is that emulator:
a 16-digit ID is a FeliCa IDm, a 14-digit one a 7-byte Type 2 UID.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


def emulate(port: int, idm_hex: str) -> None:
    """Be a FeliCa tag with identifier ``idm_hex`` on udp:127.0.0.1:PORT until killed."""
    import nfc
    import nfc.clf
    import nfc.clf.udp

    def bind_loopback_only(self, time_to_return):
        # nfcpy binds its listening socket to 0.0.0.0; a test has no business on the network.
        self.socket.bind(("127.0.0.1", self.addr[1]))
        return True

    nfc.clf.udp.Device._bind_socket = bind_loopback_only

    def on_startup(target):
        target.brty = "212F"
        target.sensf_res = bytearray.fromhex("01" + idm_hex + "03014B024F4993FF" + "12FC")
        return target

    clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{port}")
    print("ready", flush=True)
    while True:
        clf.connect(card={"on-startup": on_startup, "on-connect": lambda tag: True})


def _bcc(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def emulate_type2(port: int, uid_hex: str) -> None:
    """Be an NTAG213 (ISO 14443-A, Type 2) with a 7-byte UID on udp:127.0.0.1:PORT until killed.

    nfcpy has no Type 2 emulation, so this answers the frames itself over clf.listen and
    clf.exchange: anticollision (cascade level 1 and 2), READ (0x30) and GET_VERSION (0x60).
    Anything else gets no answer, as a real tag goes mute.
    """
    import nfc
    import nfc.clf
    import nfc.clf.udp

    nfc.clf.udp.Device._bind_socket = lambda self, t: (self.socket.bind(("127.0.0.1", self.addr[1])), True)[1]
    uid = bytes.fromhex(uid_hex)
    assert len(uid) == 7
    cl1, cl2 = bytes([0x88]) + uid[:3], uid[3:]
    memory = bytearray(45 * 4)
    memory[0:9] = uid[:3] + bytes([_bcc(cl1)]) + uid[3:] + bytes([_bcc(cl2)])
    memory[12:16] = bytes.fromhex("E1101200")  # capability container: NDEF, 144 bytes
    memory[16:19] = bytes.fromhex("0300FE")  # an empty NDEF message

    def answer(cmd):
        if cmd is None:
            return None
        cmd = bytes(cmd)
        if cmd in (b"\x26", b"\x52"):
            return bytearray.fromhex("4400")
        if cmd == b"\x93\x20":
            return bytearray(cl1 + bytes([_bcc(cl1)]))
        if cmd == b"\x93\x70" + cl1 + bytes([_bcc(cl1)]):
            return bytearray(b"\x04")  # cascade: more UID to come
        if cmd == b"\x95\x20":
            return bytearray(cl2 + bytes([_bcc(cl2)]))
        if cmd == b"\x95\x70" + cl2 + bytes([_bcc(cl2)]):
            return bytearray(b"\x00")  # complete, Type 2
        if len(cmd) == 2 and cmd[0] == 0x30:
            start = (cmd[1] % 45) * 4
            return bytearray((memory + memory)[start : start + 16])
        if cmd == b"\x60":
            return bytearray.fromhex("0004040201000F03")  # NTAG213
        return None

    target = nfc.clf.LocalTarget("106A")
    target.sens_res = bytearray.fromhex("4400")
    target.sdd_res = bytearray(uid)
    target.sel_res = bytearray(b"\x00")
    clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{port}")
    print("ready", flush=True)
    while True:
        activated = clf.listen(target, 1.0)
        if activated is None:
            continue
        cmd = activated.tt2_cmd
        while True:
            try:
                cmd = clf.exchange(answer(cmd), 5.0)
            except nfc.clf.BrokenLinkError:
                break  # the reader switched its field off
            except nfc.clf.CommunicationError:
                cmd = None


if __name__ == "__main__":
    if len(sys.argv[2]) == 14:
        emulate_type2(int(sys.argv[1]), sys.argv[2])
    else:
        emulate(int(sys.argv[1]), sys.argv[2])
    sys.exit(0)


from firmware_bridge.driver import make_driver  # noqa: E402
from klick.config import ReaderConfig  # noqa: E402

pytest.importorskip("nfc")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    def __init__(self) -> None:
        self.items: queue.SimpleQueue = queue.SimpleQueue()

    def seen(self, uid, at):
        self.items.put(("seen", uid))

    def gone(self, at):
        self.items.put(("gone",))

    def tapped(self, uid, at):
        self.items.put(("tapped", uid))

    def status(self, state, detail, mode="slot"):
        self.items.put(("status", state, mode))

    def next(self, *want: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {want} in time"
            item = self.items.get(timeout=left)
            if item[0] in want:
                return item


class Emulator:
    def __init__(self, port: int, idm: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(port), idm], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def lift(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def driver_on_udp():
    port = free_udp_port()
    sink = Recorder()
    driver = make_driver(ReaderConfig(driver="nfc", device=f"udp:127.0.0.1:{port}"), sink)
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
    emulators: list[Emulator] = []

    def emulate_tag(idm: str) -> Emulator:
        emulators.append(Emulator(port, idm))
        return emulators[-1]

    thread.start()
    yield sink, emulate_tag
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    for emulator in emulators:
        if emulator.proc.poll() is None:
            emulator.lift()


@pytest.mark.slow
def test_an_emulated_felica_tag_comes_and_goes(driver_on_udp):
    sink, emulate_tag = driver_on_udp
    assert sink.next("status")[1] == "connected"
    tag = emulate_tag("02FE0102030405AB")
    assert sink.next("seen") == ("seen", "02FE0102030405AB")
    tag.lift()
    assert sink.next("gone", "seen") == ("gone",)
    # Another card on the same reader, without restarting anything.
    tag = emulate_tag("0123456789ABCDEF")
    assert sink.next("seen") == ("seen", "0123456789ABCDEF")
    tag.lift()
    assert sink.next("gone", "seen") == ("gone",)


@pytest.mark.slow
def test_an_emulated_type2_tag_comes_and_goes(driver_on_udp):
    sink, emulate_tag = driver_on_udp
    assert sink.next("status")[1] == "connected"
    tag = emulate_tag("04A2B3C4D5E680")  # 7 bytes: the responder is an NTAG213
    assert sink.next("seen") == ("seen", "04A2B3C4D5E680")
    tag.lift()
    assert sink.next("gone", "seen") == ("gone",)


@pytest.mark.slow
def test_the_bridge_reports_the_emulated_tag_on_its_socket(tmp_path, monkeypatch):
    """The whole daemon with the nfc driver: card_present with the tag's ID, then card_removed."""
    from firmware_bridge.daemon import Bridge
    from klick.bridge_client import iter_events
    from klick.config import load_config
    from klick.events import CardPresent, CardRemoved, ReaderStatus

    port = free_udp_port()
    sock_dir = f"/tmp/klick-nfc-{os.getpid()}"
    os.makedirs(sock_dir, exist_ok=True)
    monkeypatch.setenv("KLICK_HOME", str(tmp_path))
    (tmp_path / "klick.yaml").write_text(
        f"reader:\n  driver: nfc\n  device: udp:127.0.0.1:{port}\n  grace_ms: 300\npaths:\n  socket: {sock_dir}/b.sock\n"
    )
    bridge = Bridge(load_config())
    bridge.open()
    runner = threading.Thread(target=bridge.run, kwargs={"handle_signals": False}, daemon=True)
    runner.start()
    emulator = None
    try:
        events = iter_events(f"{sock_dir}/b.sock", timeout=20)
        assert any(isinstance(e, ReaderStatus) and e.state == "connected" for e in events)
        emulator = Emulator(port, "02FE0102030405AB")
        present = next(e for e in events if not isinstance(e, ReaderStatus))
        assert present == CardPresent("02FE0102030405AB", "reader", present.at)
        emulator.lift()
        removed = next(e for e in events if not isinstance(e, ReaderStatus))
        assert isinstance(removed, CardRemoved) and removed.uid == "02FE0102030405AB"
    finally:
        if emulator is not None and emulator.proc.poll() is None:
            emulator.lift()
        bridge.stop()
        runner.join(10)
        os.rmdir(sock_dir)


def _bridge_log_with_no_nfc_reader(tmp_path, *flags: str) -> str:
    """Run `klick bridge --driver nfc` at a USB address nothing answers for a few retries."""
    import signal

    sock_dir = Path(f"/tmp/klick-nfc-quiet-{os.getpid()}-{len(flags)}")
    sock_dir.mkdir(exist_ok=True)
    (tmp_path / "klick.yaml").write_text(f"paths:\n  socket: {sock_dir}/b.sock\n")
    log = tmp_path / f"bridge{len(flags)}.log"
    env = dict(os.environ, KLICK_HOME=str(tmp_path))
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from klick.cli import main; main()",
                "bridge",
                "--driver",
                "nfc",
                "--device",
                "usb:ffff:ffff",
                *flags,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            deadline = time.monotonic() + 20
            while "No NFC reader found" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            time.sleep(2.0)  # two more retries (0.5 s, then 1 s later)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    sock_dir.rmdir()
    return log.read_text()


def test_a_missing_nfc_reader_logs_nfcpy_chatter_only_when_verbose(tmp_path):
    quiet = _bridge_log_with_no_nfc_reader(tmp_path)
    assert "No NFC reader found at usb:ffff:ffff" in quiet
    assert "searching for reader" not in quiet and "no reader available" not in quiet, quiet
    assert len(quiet.splitlines()) <= 5, quiet
    verbose = _bridge_log_with_no_nfc_reader(tmp_path, "-v")
    assert "searching for reader on path usb:ffff:ffff" in verbose, verbose
