# The Klick wire protocol, reader side, for MicroPython (it also runs under CPython).
#
# The host's firmware_bridge/protocol.py is the executable contract and PROTOCOL.md the
# readable one; this file is the same framing cut down to what a Pico needs: build the reader's
# messages, and pull the host's commands out of a noisy byte stream. It keeps the host's
# resync rule (drop through the next 0x7E) so both ends recover from noise the same way.
# No dataclasses, no struct, no tables: it must fit and start fast on a microcontroller.

SYNC = 0x7E
MIN_FRAME = 6
MAX_FRAME = 64
PROTOCOL_VERSION = 2

# Reader -> host
HELLO = 0x01
CARD_PRESENT = 0x02
CARD_REMOVED = 0x03
HEARTBEAT = 0x04
ACK = 0x05
ERROR = 0x06
CARD_IN_EVENT = 0x07  # version 2: a card event, resent until the host acknowledges it
CARD_OUT_EVENT = 0x08
# Host -> reader
IDENTIFY = 0x81
LED = 0x82
BEEP = 0x83
STATUS = 0x84
EVENT_ACK = 0x85  # version 2: "I have every card event up to this counter"; never acknowledged

# ERROR codes (the text beside them is what a carer reads in the bridge log)
ERR_UNKNOWN_COMMAND = 1
ERR_BAD_FRAME = 2
ERR_NO_CHIP = 3
ERR_INTERNAL = 4

MAX_UID = 20


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE, bit by bit: 64-byte frames do not justify a 512-byte table."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def frame(seq, payload):
    head = bytes((len(payload) + 5, 0x10 | (seq & 0x0F))) + payload
    crc = crc16(head)
    return head + bytes((crc >> 8, crc & 0xFF, SYNC))


def _text(s):
    raw = s.encode()[:255]
    return bytes((len(raw),)) + raw


def _u16(n):
    n &= 0xFFFF
    return bytes((n >> 8, n & 0xFF))


def hello(firmware, kind):
    return bytes((HELLO, PROTOCOL_VERSION)) + _text(firmware) + _text(kind)


def card_present(counter, uid):
    uid = bytes(uid[:MAX_UID])
    return bytes((CARD_PRESENT,)) + _u16(counter) + bytes((len(uid),)) + uid


def card_removed(counter):
    return bytes((CARD_REMOVED,)) + _u16(counter)


def card_in_event(counter, age_ms, uid):
    uid = bytes(uid[:MAX_UID])
    return bytes((CARD_IN_EVENT,)) + _u16(counter) + _u16(min(age_ms, 0xFFFF)) + bytes((len(uid),)) + uid


def card_out_event(counter, age_ms):
    return bytes((CARD_OUT_EVENT,)) + _u16(counter) + _u16(min(age_ms, 0xFFFF))


def heartbeat(counter):
    return bytes((HEARTBEAT,)) + _u16(counter)


def ack(seq):
    return bytes((ACK, 0x10 | (seq & 0x0F)))


def error(code, text):
    return bytes((ERROR, code & 0xFF)) + _text(text[:40])


class Decoder:
    """Bytes in, ``(seq, payload)`` of every CRC-valid frame out; never raises.

    The buffer never holds more than one frame. On a bad LEN, SEQ marker, sync byte or CRC it
    drops bytes up to and including the next 0x7E and counts one error, as the host does. And
    like the host it looks past a head that only looks like a frame's start: two bytes of noise
    such as ``40 11`` must not hold back the real command behind them until 64 bytes arrive.
    """

    def __init__(self):
        self.buf = bytearray()
        self.errors = 0

    def _resync(self):
        # A loop, not bytearray.find: MicroPython's bytearray has no find.
        self.errors += 1
        buf = self.buf
        i = 0
        while i < len(buf) and buf[i] != SYNC:
            i += 1
        self.buf = buf[i + 1:]

    def _frame_inside(self):
        """Does a complete, CRC-valid frame start right after some 0x7E in the buffer?"""
        buf = self.buf
        for i in range(len(buf) - MIN_FRAME):
            if buf[i] != SYNC:
                continue
            s = i + 1
            n = buf[s]
            if (MIN_FRAME <= n <= MAX_FRAME and s + n <= len(buf) and buf[s + 1] & 0xF0 == 0x10
                    and buf[s + n - 1] == SYNC
                    and crc16(buf[s:s + n - 3]) == (buf[s + n - 3] << 8) | buf[s + n - 2]):
                return True
        return False

    def feed(self, data):
        out = []
        self.buf += data
        while self.buf:
            buf = self.buf
            n = buf[0]
            if n < MIN_FRAME or n > MAX_FRAME or (len(buf) > 1 and buf[1] & 0xF0 != 0x10):
                self._resync()
                continue
            if len(buf) < n:
                if self._frame_inside():
                    self._resync()
                    continue
                break
            if buf[n - 1] != SYNC or crc16(buf[:n - 3]) != (buf[n - 3] << 8) | buf[n - 2]:
                self._resync()
                continue
            out.append((buf[1] & 0x0F, bytes(buf[2:n - 3])))
            self.buf = buf[n:]
        return out
