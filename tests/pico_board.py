"""A Raspberry Pi Pico with an MFRC522 and a card, faked for the reader firmware under CPython.

The fakes stand in for MicroPython's ``machine`` module and, at register level, for the MFRC522
chip with an ISO 14443-A card in front of it: the firmware's own MFRC522 driver runs unchanged,
the card answers WUPA/anticollision/select/HLTA as a real one does (and ignores a REQA while it
is ACTIVE), and the chip's CRC unit computes real CRC_A. :class:`FirmwareOnPty` runs the
firmware's real ``main()`` on a pseudo-terminal, optionally through a noisy line.

Used by tests/test_firmware.py, tests/test_firmware_launcher.py and the reliability suite
(tests/soak/decoder_noise.py).
"""

from __future__ import annotations

import importlib.util
import io
import os
import select
import sys
import threading
import tty
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def load(name: str, as_name: str | None = None) -> types.ModuleType:
    """One of the firmware's files as a module (``klick_proto``, ``mfrc522``, ``main``)."""
    spec = importlib.util.spec_from_file_location(as_name or name, FW / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def firmware_on(board: Board) -> Iterator[Board]:
    """Make the board's ``machine`` and the firmware's modules importable; ``board.fw`` is main.py."""
    names = ("machine", "klick_proto", "mfrc522")
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules["machine"] = board.module()
    sys.modules["klick_proto"] = load("klick_proto")
    sys.modules["mfrc522"] = load("mfrc522")
    try:
        board.fw = load("main", "klick_firmware_main")
        board.cs_pin = board.fw.PIN_CS
        yield board
    finally:
        for n, module in saved.items():
            if module is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = module


# ---------------------------------------------------------------------------------------------
# The firmware's main() on a pseudo-terminal


class NoisyPort:
    """The firmware's USB port with a line in between: each frame it writes goes through
    ``to_host``, each chunk it reads through ``to_reader`` (bytes in, bytes out)."""

    def __init__(self, port, to_host: Callable[[bytes], bytes] | None, to_reader: Callable[[bytes], bytes] | None) -> None:
        self.port = port
        self.to_host = to_host
        self.to_reader = to_reader

    def read(self, timeout_ms: int) -> bytes:
        data = self.port.read(timeout_ms)
        return self.to_reader(data) if data and self.to_reader else data

    def write(self, data: bytes) -> None:
        self.port.write(self.to_host(data) if self.to_host else data)


class FirmwareOnPty:
    """The firmware's real main() in a thread, its USB port bound to a pty master."""

    def __init__(
        self,
        board: Board,
        link: Path,
        to_host: Callable[[bytes], bytes] | None = None,
        to_reader: Callable[[bytes], bytes] | None = None,
    ) -> None:
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
        if to_host or to_reader:
            port = NoisyPort(port, to_host, to_reader)
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
