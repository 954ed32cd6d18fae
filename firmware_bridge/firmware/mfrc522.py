# A minimal MFRC522 driver for MicroPython: enough to read the UID of an ISO 14443-A card.
#
# Klick only needs "which card is in the slot, if any", fifty times a second, so this is the
# smallest honest subset of the chip: reset and antenna set-up, transceive, the chip's own
# CRC_A unit, and the anticollision/select cascade for 4-, 7- and 10-byte UIDs. It reads no
# card memory and knows no keys.
#
# Each poll ends with HLTA, so the card rests in HALT and only a WUPA wakes it: a card lying
# still answers every poll. (With REQA, a card left ACTIVE by the previous poll would ignore
# every other request and flicker out and in.)

# Registers
COMMAND = 0x01
COM_IEN = 0x02
COM_IRQ = 0x04
DIV_IRQ = 0x05
ERROR = 0x06
FIFO_DATA = 0x09
FIFO_LEVEL = 0x0A
CONTROL = 0x0C
BIT_FRAMING = 0x0D
COLL = 0x0E
MODE = 0x11
TX_CONTROL = 0x14
TX_ASK = 0x15
CRC_RESULT_H = 0x21
CRC_RESULT_L = 0x22
T_MODE = 0x2A
T_PRESCALER = 0x2B
T_RELOAD_H = 0x2C
T_RELOAD_L = 0x2D
VERSION = 0x37

# Commands
IDLE = 0x00
CALC_CRC = 0x03
TRANSCEIVE = 0x0C
SOFT_RESET = 0x0F

# PICC commands
REQA = 0x26
WUPA = 0x52
HLTA = 0x50
CASCADE = (0x93, 0x95, 0x97)
CASCADE_TAG = 0x88

KNOWN_VERSIONS = (0x88, 0x90, 0x91, 0x92, 0x12, 0xB2)


class ChipMissing(OSError):
    """The MFRC522 does not answer on SPI (unwired, unpowered, or the wrong pins)."""


class MFRC522:
    def __init__(self, spi, cs, rst=None):
        self.spi = spi
        self.cs = cs
        self.rst = rst
        self.cs(1)
        if rst is not None:
            rst(0)
            rst(1)
        self.init()

    # -- SPI ------------------------------------------------------------------------------

    def _w(self, reg, value):
        self.cs(0)
        self.spi.write(bytes(((reg << 1) & 0x7E, value)))
        self.cs(1)

    def _r(self, reg):
        self.cs(0)
        self.spi.write(bytes((((reg << 1) & 0x7E) | 0x80,)))
        value = self.spi.read(1)[0]
        self.cs(1)
        return value

    def _set(self, reg, mask):
        self._w(reg, self._r(reg) | mask)

    def _clear(self, reg, mask):
        self._w(reg, self._r(reg) & ~mask)

    # -- set-up ---------------------------------------------------------------------------

    def version(self):
        return self._r(VERSION)

    def init(self):
        """Reset the chip and switch the antenna on; raise ChipMissing if nothing answers."""
        self._w(COMMAND, SOFT_RESET)
        v = self.version()
        if v in (0x00, 0xFF):
            raise ChipMissing("the MFRC522 does not answer on SPI")
        self._w(T_MODE, 0x8D)  # timer starts after each transmission...
        self._w(T_PRESCALER, 0x3E)  # ...ticking at about 2 kHz...
        self._w(T_RELOAD_H, 0)
        self._w(T_RELOAD_L, 30)  # ...so a silent card times out after about 15 ms
        self._w(TX_ASK, 0x40)  # 100 % ASK, as ISO 14443-A wants
        self._w(MODE, 0x3D)  # CRC preset 0x6363
        self._set(TX_CONTROL, 0x03)  # antenna on
        return v

    # -- talking to a card ----------------------------------------------------------------

    def _transceive(self, data, last_bits=0):
        """Send ``data`` (last byte ``last_bits`` long, 0 = 8); the card's answer or None."""
        self._w(COMMAND, IDLE)
        self._w(COM_IRQ, 0x7F)  # clear every interrupt flag
        self._w(FIFO_LEVEL, 0x80)  # flush the FIFO
        for b in data:
            self._w(FIFO_DATA, b)
        self._w(BIT_FRAMING, last_bits & 0x07)
        self._w(COMMAND, TRANSCEIVE)
        self._set(BIT_FRAMING, 0x80)  # StartSend
        for _ in range(200):
            irq = self._r(COM_IRQ)
            if irq & 0x30:  # RxIRq or IdleIRq: an answer came
                break
            if irq & 0x01:  # TimerIRq: no card answered in time
                self._clear(BIT_FRAMING, 0x80)
                return None
        else:
            self._clear(BIT_FRAMING, 0x80)
            return None
        self._clear(BIT_FRAMING, 0x80)
        if self._r(ERROR) & 0x1B:  # buffer overflow, collision, parity or protocol error
            return None
        n = self._r(FIFO_LEVEL)
        return bytes([self._r(FIFO_DATA) for _ in range(n)])

    def _crc(self, data):
        self._w(COMMAND, IDLE)
        self._w(DIV_IRQ, 0x04)
        self._w(FIFO_LEVEL, 0x80)
        for b in data:
            self._w(FIFO_DATA, b)
        self._w(COMMAND, CALC_CRC)
        for _ in range(255):
            if self._r(DIV_IRQ) & 0x04:
                break
        else:
            raise OSError("the MFRC522 CRC unit did not finish")
        self._w(COMMAND, IDLE)
        return bytes((self._r(CRC_RESULT_L), self._r(CRC_RESULT_H)))

    def read_uid(self):
        """The UID of the card in the field as bytes, or None if there is none (or it misread)."""
        atqa = self._transceive(bytes((WUPA,)), 7)
        if atqa is None or len(atqa) != 2:
            return None
        uid = b""
        for sel in CASCADE:
            part = self._transceive(bytes((sel, 0x20)))
            if part is None or len(part) != 5:
                return None
            if part[0] ^ part[1] ^ part[2] ^ part[3] != part[4]:
                return None  # BCC mismatch: a misread, try again next poll
            select = bytes((sel, 0x70)) + part
            sak = self._transceive(select + self._crc(select))
            if sak is None or len(sak) != 3 or self._crc(sak[:1]) != sak[1:]:
                return None
            if part[0] == CASCADE_TAG and sak[0] & 0x04:
                uid += part[1:4]  # more UID bytes follow at the next cascade level
                continue
            uid += part[:4]
            self._halt()
            return uid
        return None

    def _halt(self):
        cmd = bytes((HLTA, 0x00))
        self._transceive(cmd + self._crc(cmd))  # a halted card does not answer: None is right
