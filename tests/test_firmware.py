"""The Pico reader firmware, run under CPython on fake hardware.

The fakes stand in for MicroPython's ``machine`` module and, at register level, for the MFRC522
chip with an ISO 14443-A card in front of it: the firmware's own MFRC522 driver runs unchanged,
the card answers WUPA/anticollision/select/HLTA as a real one does (and ignores a REQA while it
is ACTIVE), and the chip's CRC unit computes real CRC_A. So these tests check the firmware's
actual bytes against the host's parser, and finally drive the real ``klick bridge`` through a
pty: card in the fake slot -> card_present on the bridge socket.

To extend the end-to-end test (e.g. with the launcher's card screen), use the ``pico_reader``
fixture: it gives a running bridge on a firmware-driven pty with ``insert``/``remove``.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as p

REPO = Path(__file__).resolve().parent.parent
FW = REPO / "firmware_bridge" / "firmware"

# ---------------------------------------------------------------------------------------------
# A register-level MFRC522 and an ISO 14443-A card


def crc_a(data: bytes) -> bytes:
    """ISO 14443-A CRC (init 0x6363), low byte first, as the card and the chip compute it."""
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


class FakeCard:
    """A card's ISO 14443-3 state machine: IDLE, READY, ACTIVE, HALT."""

    def __init__(self, uid: bytes) -> None:
        assert len(uid) in (4, 7, 10)
        self.uid = uid
        self.state = "IDLE"
        self.level = 0
        self.deaf = 0  # the next N wake-ups go unanswered: a cheap tag dropping out
        self.selects = 0

    def _cl(self) -> bytes:
        u, lvl = self.uid, self.level
        if len(u) == 4:
            part = u
        elif len(u) == 7:
            part = bytes([0x88]) + u[0:3] if lvl == 0 else u[3:7]
        else:
            part = (bytes([0x88]) + u[0:3], bytes([0x88]) + u[3:6], u[6:10])[lvl]
        return part + bytes([part[0] ^ part[1] ^ part[2] ^ part[3]])

    def _levels(self) -> int:
        return {4: 1, 7: 2, 10: 3}[len(self.uid)]

    def _unexpected(self) -> None:
        self.state = "HALT" if self.state == "HALT" else "IDLE"

    def receive(self, data: bytes, last_bits: int) -> bytes | None:
        if last_bits == 7 and len(data) == 1:
            if (data[0] == 0x52 and self.state in ("IDLE", "HALT")) or (data[0] == 0x26 and self.state == "IDLE"):
                if self.deaf:
                    self.deaf -= 1
                    return None
                self.state, self.level = "READY", 0
                return {4: b"\x04\x00", 7: b"\x44\x00", 10: b"\x84\x00"}[len(self.uid)]
            self._unexpected()
            return None
        sel = (0x93, 0x95, 0x97)
        if self.state == "READY" and len(data) == 2 and data == bytes([sel[self.level], 0x20]):
            return self._cl()
        if self.state == "READY" and len(data) == 9 and data[:2] == bytes([sel[self.level], 0x70]):
            if data[2:7] != self._cl() or crc_a(data[:7]) != data[7:9]:
                self.state = "IDLE"
                return None
            if self.level + 1 < self._levels():
                self.level += 1
                sak = 0x04
            else:
                self.state = "ACTIVE"
                self.selects += 1
                sak = 0x08
            return bytes([sak]) + crc_a(bytes([sak]))
        if self.state == "ACTIVE" and data == b"\x50\x00" + crc_a(b"\x50\x00"):
            self.state = "HALT"
            return None
        self._unexpected()
        return None


class FakeChip:
    """The MFRC522 as its SPI interface shows it: registers, FIFO, CRC unit, transceive."""

    def __init__(self, version: int = 0x92) -> None:
        self.version = version
        self.card: FakeCard | None = None
        self.regs = bytearray(0x40)
        self.fifo = bytearray()
        self.addr: int | None = None
        self.selected = False
        self.transceives = 0

    # -- SPI, as the fake machine.SPI and the CS pin deliver it
    def cs(self, level: int) -> None:
        self.selected = level == 0
        self.addr = None

    def spi_write(self, buf: bytes) -> None:
        assert self.selected, "SPI traffic with CS high"
        for b in buf:
            if self.addr is None:
                self.addr = b
            elif not self.addr & 0x80:
                self.write_reg((self.addr >> 1) & 0x3F, b)

    def spi_read(self, n: int) -> bytes:
        assert self.selected and self.addr is not None and self.addr & 0x80
        return bytes(self.read_reg((self.addr >> 1) & 0x3F) for _ in range(n))

    # -- the chip
    def write_reg(self, reg: int, v: int) -> None:
        if reg == 0x01:  # CommandReg
            cmd = v & 0x0F
            if cmd == 0x0F:
                self.regs = bytearray(0x40)
                self.fifo.clear()
                return
            self.regs[0x01] = v
            if cmd == 0x03:  # CalcCRC
                crc = crc_a(bytes(self.fifo))
                self.fifo.clear()
                self.regs[0x22], self.regs[0x21] = crc[0], crc[1]
                self.regs[0x05] |= 0x04
        elif reg in (0x04, 0x05):  # ComIrqReg, DivIrqReg: bit 7 says set or clear
            if v & 0x80:
                self.regs[reg] |= v & 0x7F
            else:
                self.regs[reg] &= ~v & 0x7F
        elif reg == 0x09:
            self.fifo.append(v)
        elif reg == 0x0A:
            if v & 0x80:
                self.fifo.clear()
        elif reg == 0x0D:
            self.regs[reg] = v
            if v & 0x80 and self.regs[0x01] & 0x0F == 0x0C:
                self._transceive()
        else:
            self.regs[reg] = v

    def read_reg(self, reg: int) -> int:
        if reg == 0x37:
            return self.version
        if reg == 0x09:
            return self.fifo.pop(0) if self.fifo else 0
        if reg == 0x0A:
            return len(self.fifo)
        return self.regs[reg]

    def _transceive(self) -> None:
        self.transceives += 1
        data, last_bits = bytes(self.fifo), self.regs[0x0D] & 0x07
        self.fifo.clear()
        card = self.card
        antenna = self.regs[0x14] & 0x03 == 0x03
        answer = card.receive(data, last_bits) if card is not None and antenna else None
        if answer is None:
            if self.regs[0x2A] & 0x80:  # TAuto: the timer runs out
                self.regs[0x04] |= 0x01
        else:
            self.fifo[:] = answer
            self.regs[0x06] = 0
            self.regs[0x04] |= 0x30


# ---------------------------------------------------------------------------------------------
# A fake ``machine`` module on a fake board


class Board:
    def __init__(self, cs_pin: int = 17) -> None:
        self.chip = FakeChip()
        self.cs_pin = cs_pin
        self.pwm: dict[int, dict] = {}
        self.pins: dict[object, int] = {}
        self.wdt_feeds = 0
        self.wdt_timeout: int | None = None
        self.maintenance = False

    def module(self) -> types.ModuleType:
        board = self
        m = types.ModuleType("machine")

        class Pin:
            OUT, IN, PULL_UP = 1, 0, 2

            def __init__(self, id, mode=None, pull=None, value=None):
                self.id, self.pull = id, pull
                if value is not None:
                    self(value)

            def __call__(self, v=None):
                return self.value(v)

            def value(self, v=None):
                if v is None:
                    if self.pull == Pin.PULL_UP:
                        return 0 if board.maintenance else 1
                    return board.pins.get(self.id, 0)
                board.pins[self.id] = v
                if self.id == board.cs_pin:
                    board.chip.cs(v)

        class SPI:
            def __init__(self, id, baudrate, polarity, phase, sck, mosi, miso):
                board.spi = (id, baudrate, polarity, phase, sck.id, mosi.id, miso.id)

            def write(self, buf):
                board.chip.spi_write(bytes(buf))

            def read(self, n, write=0):
                return board.chip.spi_read(n)

        class PWM:
            def __init__(self, pin):
                self.state = board.pwm.setdefault(pin.id, {"freq": 0, "duty": 0})

            def freq(self, f):
                self.state["freq"] = f

            def duty_u16(self, d):
                self.state["duty"] = d

        class WDT:
            def __init__(self, timeout):
                board.wdt_timeout = timeout

            def feed(self):
                board.wdt_feeds += 1

        m.Pin, m.SPI, m.PWM, m.WDT = Pin, SPI, PWM, WDT
        return m

    def insert(self, uid: bytes | str) -> FakeCard:
        self.chip.card = FakeCard(bytes.fromhex(uid) if isinstance(uid, str) else uid)
        return self.chip.card

    def remove(self) -> None:
        self.chip.card = None


def _load(name: str, as_name: str | None = None) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(as_name or name, FW / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def board(monkeypatch) -> Board:
    """A fake board whose ``machine`` module, and the firmware's own modules, are importable."""
    b = Board()
    monkeypatch.setitem(sys.modules, "machine", b.module())
    monkeypatch.setitem(sys.modules, "klick_proto", _load("klick_proto"))
    monkeypatch.setitem(sys.modules, "mfrc522", _load("mfrc522"))
    b.fw = _load("main", "klick_firmware_main")
    b.cs_pin = b.fw.PIN_CS
    return b


class Clock:
    def __init__(self) -> None:
        self.ms = 1000

    def __call__(self) -> int:
        return self.ms


class Rig:
    """The firmware with a fake clock; ``advance`` steps it the way its main loop would."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.clock = Clock()
        self.out = bytearray()
        reader, led, buzzer = board.fw.build(sys.modules["machine"])
        self.led, self.buzzer = led, buzzer
        self.fw = board.fw.Firmware(reader, self.out.extend, led, buzzer, clock=self.clock)
        self.host = p.Decoder()
        self.fw.boot()

    def advance(self, ms: int, step: int = 10) -> None:
        for _ in range(ms // step):
            self.clock.ms += step
            self.fw.step()

    def messages(self) -> list[p.Message]:
        got = [m for _, m in self.host.feed(bytes(self.out))]
        self.out.clear()
        return got

    def send(self, msg: p.Message, seq: int) -> list[tuple[int, p.Message]]:
        self.fw.feed(p.encode(msg, seq))
        got = self.host.feed(bytes(self.out))
        self.out.clear()
        return got


# ---------------------------------------------------------------------------------------------
# What the firmware says, read by the host's parser


def test_hello_heartbeats_and_card_events_decode_in_the_host_parser(board):
    rig = Rig(board)
    rig.advance(2000)
    msgs = rig.messages()
    assert msgs[0] == p.Hello(1, board.fw.FIRMWARE, "slot")
    assert msgs[1:] == [p.Heartbeat(0), p.Heartbeat(0)]

    board.insert("04A2B3C4D5E680")
    rig.advance(100)
    assert rig.messages() == [p.CardPresentMsg(1, bytes.fromhex("04A2B3C4D5E680"))]

    rig.advance(3000)  # lying still: sixty polls, no flicker, one heartbeat a second
    assert rig.messages() == [p.Heartbeat(1)] * 3
    assert board.chip.card.selects >= 55  # it really was read every poll (WUPA wakes it from HALT)

    board.remove()
    rig.advance(300)
    assert rig.messages() == [p.CardRemovedMsg(2)]
    assert rig.host.errors == 0


@pytest.mark.parametrize("uid", ["0A0B0C0D", "04A2B3C4D5E680", "0102030405060708090A"])
def test_four_seven_and_ten_byte_uids_come_through_the_cascade(board, uid):
    rig = Rig(board)
    board.insert(uid)
    rig.advance(100)
    assert rig.messages()[1:] == [p.CardPresentMsg(1, bytes.fromhex(uid))]


def test_a_card_that_drops_out_for_two_polls_is_not_removed_but_three_are(board):
    rig = Rig(board)
    card = board.insert("0A0B0C0D")
    rig.advance(100)
    rig.messages()
    card.deaf = 2  # a cheap tag missing two polls in a row
    rig.advance(500)
    assert [m for m in rig.messages() if not isinstance(m, p.Heartbeat)] == []
    card.deaf = 3
    rig.advance(500)
    assert [m for m in rig.messages() if not isinstance(m, p.Heartbeat)] == [
        p.CardRemovedMsg(2),
        p.CardPresentMsg(3, bytes.fromhex("0A0B0C0D")),
    ]


def test_a_swapped_card_ends_the_old_one_first(board):
    rig = Rig(board)
    board.insert("0A0B0C0D")
    rig.advance(100)
    board.insert("11223344")
    rig.advance(100)
    assert rig.messages()[1:] == [
        p.CardPresentMsg(1, bytes.fromhex("0A0B0C0D")),
        p.CardRemovedMsg(2),
        p.CardPresentMsg(3, bytes.fromhex("11223344")),
    ]


def test_commands_are_acked_with_their_seq_and_obeyed(board):
    rig = Rig(board)
    rig.messages()
    assert rig.send(p.Identify(), 5) == [(1, p.Ack(5)), (2, p.Hello(1, board.fw.FIRMWARE, "slot"))]
    assert rig.send(p.Status(), 6) == [(3, p.Ack(6)), (4, p.CardRemovedMsg(0))]
    assert [m for _, m in rig.send(p.Led(255, 0, 128), 7)] == [p.Ack(7)]
    assert [board.pwm[n]["duty"] for n in board.fw.RGB_PINS] == [65535, 0, 128 * 257]

    assert [m for _, m in rig.send(p.Beep(300), 8)] == [p.Ack(8)]
    buzzer = board.pwm[board.fw.BUZZER_PIN]
    assert buzzer["duty"] > 0 and buzzer["freq"] == board.fw.BUZZER_HZ
    rig.advance(250)
    assert buzzer["duty"] > 0
    rig.advance(100)
    assert buzzer["duty"] == 0  # the beep ended by itself, without blocking the loop

    board.insert("0A0B0C0D")
    rig.advance(100)
    rig.messages()
    # A resent command (same seq) is simply obeyed again.
    for _ in range(2):
        assert [m for _, m in rig.send(p.Status(), 9)] == [p.Ack(9), p.CardPresentMsg(1, bytes.fromhex("0A0B0C0D"))]


def test_unknown_commands_and_noise_are_reported_once_and_the_next_command_still_works(board):
    rig = Rig(board)
    rig.messages()
    frame = p.encode(p.Status(), 1)
    unknown = bytes([6, 0x12, 0x99]) + p.crc16_ccitt(bytes([6, 0x12, 0x99])).to_bytes(2, "big") + b"\x7e"
    rig.fw.feed(unknown)
    assert rig.messages() == [p.ErrorMsg(1, "unknown command 0x99")]
    for _ in range(20):
        rig.fw.feed(b"\x40\x11garbage\x7e")
    got = rig.messages()
    assert got == [p.ErrorMsg(2, "bad frame from host")]  # once, not twenty times
    rig.fw.feed(frame)
    assert rig.messages() == [p.Ack(1), p.CardRemovedMsg(0)]


def test_no_chip_is_reported_and_the_reader_recovers_when_it_answers(board):
    board.chip.version = 0x00  # MISO not connected
    rig = Rig(board)
    rig.advance(2100)
    msgs = rig.messages()
    errors = [m for m in msgs if isinstance(m, p.ErrorMsg)]
    assert len(errors) == 1 and errors[0].code == 3 and "MFRC522" in errors[0].text
    assert msgs.count(p.Heartbeat(0)) == 2  # still alive for the host
    board.chip.version = 0x92  # the wire is pushed back
    board.insert("0A0B0C0D")
    rig.advance(100)
    assert rig.messages() == [p.CardPresentMsg(1, bytes.fromhex("0A0B0C0D"))]


def test_the_onboard_led_is_used_when_there_is_no_rgb_led(board, monkeypatch):
    monkeypatch.setattr(board.fw, "RGB_PINS", None)
    rig = Rig(board)
    rig.send(p.Led(0, 10, 0), 0)
    assert board.pins["LED"] == 1
    rig.send(p.Led(0, 0, 0), 1)
    assert board.pins["LED"] == 0


def test_the_maintenance_jumper_leaves_the_repl_alone(board, capsys):
    board.maintenance = True
    assert board.fw.main() is None
    assert "maintenance" in capsys.readouterr().out
    assert board.wdt_timeout is None and board.chip.transceives == 0


# ---------------------------------------------------------------------------------------------
# The firmware's protocol code agrees with the host's


def test_message_ids_and_frames_match_the_host(board):
    kp = sys.modules["klick_proto"]
    assert {
        name: getattr(kp, name)
        for name in ("HELLO", "CARD_PRESENT", "CARD_REMOVED", "HEARTBEAT", "ACK", "ERROR", "IDENTIFY", "LED", "BEEP", "STATUS")
    } == {
        "HELLO": p.MESSAGE_IDS[p.Hello],
        "CARD_PRESENT": p.MESSAGE_IDS[p.CardPresentMsg],
        "CARD_REMOVED": p.MESSAGE_IDS[p.CardRemovedMsg],
        "HEARTBEAT": p.MESSAGE_IDS[p.Heartbeat],
        "ACK": p.MESSAGE_IDS[p.Ack],
        "ERROR": p.MESSAGE_IDS[p.ErrorMsg],
        "IDENTIFY": p.MESSAGE_IDS[p.Identify],
        "LED": p.MESSAGE_IDS[p.Led],
        "BEEP": p.MESSAGE_IDS[p.Beep],
        "STATUS": p.MESSAGE_IDS[p.Status],
    }
    assert kp.crc16(b"123456789") == 0x29B1 == p.crc16_ccitt(b"123456789")
    assert kp.PROTOCOL_VERSION == p.PROTOCOL_VERSION and kp.MAX_UID == p.MAX_UID_BYTES


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(0, 15),
    counter=st.integers(0, 0xFFFF),
    uid=st.binary(min_size=1, max_size=20),
    code=st.integers(0, 255),
    text=st.text("abcdefghij XYZ:0123", max_size=40),
)
def test_every_reader_frame_is_byte_identical_to_the_hosts_encoding(seq, counter, uid, code, text):
    kp = _load("klick_proto")
    assert kp.frame(seq, kp.card_present(counter, uid)) == p.encode(p.CardPresentMsg(counter, uid), seq)
    assert kp.frame(seq, kp.card_removed(counter)) == p.encode(p.CardRemovedMsg(counter), seq)
    assert kp.frame(seq, kp.heartbeat(counter)) == p.encode(p.Heartbeat(counter), seq)
    assert kp.frame(seq, kp.ack(seq)) == p.encode(p.Ack(seq), seq)
    assert kp.frame(seq, kp.error(code, text)) == p.encode(p.ErrorMsg(code, text), seq)
    assert kp.frame(seq, kp.hello(text, "slot")) == p.encode(p.Hello(1, text, "slot"), seq)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=30), st.sampled_from([p.Identify(), p.Status(), p.Led(1, 2, 3), p.Beep(500)]), st.integers(0, 15)
        ),
        max_size=8,
    ),
    st.integers(1, 17),
)
def test_the_reader_decoder_finds_every_host_command_after_a_sync_byte(parts, chunk):
    """The host's promise, mirrored: a frame right after a 0x7E is found, however noisy the rest."""
    kp = _load("klick_proto")
    stream, expected = b"", []
    for noise, msg, seq in parts:
        frame = p.encode(msg, seq)
        stream += noise + b"\x7e" + frame
        expected.append((seq, p.encode_payload(msg)))
    dec = kp.Decoder()
    got = []
    for i in range(0, len(stream), chunk):
        got += dec.feed(stream[i : i + chunk])
    # Noise can, rarely, complete a CRC-valid frame of its own: only count the ones we sent.
    assert [g for g in got if g in expected] == expected
    assert len(dec.buf) < 64


def test_the_firmware_imports_only_what_micropython_has():
    allowed = {"klick_proto", "mfrc522", "time", "machine", "sys", "select", "uselect", "micropython", "rp2"}
    for path in FW.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module]
            else:
                assert not isinstance(node, (ast.JoinedStr, ast.AnnAssign)), f"{path.name}:{node.lineno}"
                continue
            assert set(names) <= allowed, f"{path.name}:{node.lineno} imports {names}"


# ---------------------------------------------------------------------------------------------
# End to end: the firmware on a pty, the real `klick bridge` on the other side


class FirmwareOnPty:
    """The firmware's real main() in a thread, its USB port bound to a pty master."""

    def __init__(self, board: Board, link: Path) -> None:
        self.board = board
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # raw at once, so nothing is echoed or translated before the bridge opens it
        os.set_blocking(self.master, False)  # a host that is not reading loses bytes, as a UART does
        tmp = link.with_name(link.name + ".tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, link)
        self.stream = io.FileIO(self.master, "r+b", closefd=False)
        self.stop = threading.Event()
        port = board.fw.UsbPort(select, self.stream, self.stream, self.stream)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(port,), daemon=True)
        self.thread.start()

    def _run(self, port) -> None:
        try:
            self.board.fw.main(port=port, should_stop=self.stop.is_set)
        except BaseException as exc:  # surfaced by close()
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        os.close(self.master)
        os.close(self.slave)
        assert self.error is None, self.error


@pytest.fixture
def pico_reader(board, tmp_path, monkeypatch):
    """A `klick bridge` process reading the firmware through a pty; yields (board, socket path)."""
    short = Path(f"/tmp/klick-fw-{os.getpid()}-{id(tmp_path) % 100000}")
    short.mkdir()
    link, sock = short / "klick-reader", short / "bridge.sock"
    monkeypatch.setenv("KLICK_HOME", str(tmp_path))
    (tmp_path / "klick.yaml").write_text(
        f"reader:\n  driver: serial\n  device: {link}\n  settle_ms: 80\n  grace_ms: 300\npaths:\n  socket: {sock}\n"
    )
    firmware = FirmwareOnPty(board, link)
    log = (tmp_path / "bridge.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from klick.cli import main; main()", "bridge"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=dict(os.environ),
    )
    try:
        from klick.bridge_client import BridgeUnavailable, request

        deadline = time.monotonic() + 20
        while True:
            try:
                request(sock, {"command": "status"}, timeout=2)
                break
            except (BridgeUnavailable, TimeoutError):
                assert proc.poll() is None, (tmp_path / "bridge.log").read_text()
                assert time.monotonic() < deadline, "the bridge did not start"
                time.sleep(0.05)
        yield board, sock
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        firmware.close()
        for child in short.iterdir():
            child.unlink()
        short.rmdir()


def _next(events, cls, **fields):
    for event in events:
        if isinstance(event, cls) and all(getattr(event, k) == v for k, v in fields.items()):
            return event
    raise AssertionError(f"stream ended before {cls.__name__} {fields}")


def test_the_firmware_drives_the_real_bridge_through_a_pty(pico_reader):
    from klick.bridge_client import iter_events
    from klick.events import CardPresent, CardRemoved, ReaderStatus

    board, sock = pico_reader
    events = iter_events(sock, timeout=15)
    connected = _next(events, ReaderStatus, state="connected")
    assert board.fw.FIRMWARE in connected.detail

    board.insert("04A2B3C4D5E680")
    present = _next(events, CardPresent)
    assert present.uid == "04A2B3C4D5E680"
    board.remove()
    assert _next(events, CardRemoved).uid == "04A2B3C4D5E680"
    board.insert("0A0B0C0D")
    assert _next(events, CardPresent).uid == "0A0B0C0D"
    assert board.wdt_feeds > 0 and board.wdt_timeout == board.fw.WATCHDOG_MS
