"""The Klick wire protocol between a reader's microcontroller and the host, as pure code.

Bytes in, messages out, and the host's bookkeeping (resends, the event counter, the heartbeat
watchdog) as objects driven by an injected clock. Nothing here touches a file descriptor, so
hypothesis can hammer every path and the serial driver stays a thin shell. PROTOCOL.md is the
human-readable contract; this module is the executable one and the two must agree.

Frame (modelled on Klipper's host-MCU framing)::

    LEN SEQ PAYLOAD... CRC_HI CRC_LO SYNC

LEN counts the whole frame (6..64), SEQ is ``0x10 | (seq & 0x0F)``, PAYLOAD is a message id and
its fields, CRC is CRC-16/CCITT-FALSE over LEN..end of PAYLOAD, SYNC is 0x7E.

Version 2 makes card events reliable: the reader keeps its last eight card events and resends
every one the host has not acknowledged (EVENT_ACK), each saying how long ago it happened; the
host applies them in counter order, exactly once. Version 1 readers are still served as before.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field

__all__ = [
    "SYNC",
    "MIN_FRAME",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "MAX_UID_BYTES",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "EVENT_RING",
    "EVENT_RESEND",
    "GAP_TIMEOUT",
    "HEARTBEAT_INTERVAL_V2",
    "RESEND_AFTER",
    "MAX_RESENDS",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TIMEOUT",
    "Hello",
    "CardPresentMsg",
    "CardRemovedMsg",
    "Heartbeat",
    "Ack",
    "ErrorMsg",
    "CardInEvent",
    "CardOutEvent",
    "EventAck",
    "Identify",
    "Led",
    "Beep",
    "Status",
    "Message",
    "MESSAGE_IDS",
    "crc16_ccitt",
    "encode",
    "encode_payload",
    "decode_payload",
    "FieldError",
    "Decoder",
    "CommandTracker",
    "Pending",
    "CounterWatch",
    "EventWindow",
    "Watchdog",
    "HostSession",
    "Write",
    "Present",
    "Absent",
    "Up",
    "Down",
    "Note",
]

SYNC = 0x7E
MIN_FRAME = 6  # LEN SEQ ID CRC CRC SYNC: a message with no fields
MAX_FRAME = 64
MAX_PAYLOAD = MAX_FRAME - 5
#: normalise_uid accepts at most 40 hex digits; a 10-byte ISO 14443 UID and an 8-byte FeliCa
#: IDm fit with room to spare.
MAX_UID_BYTES = 20
#: The newest version; a host serves every version in SUPPORTED_VERSIONS.
PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)

RESEND_AFTER = 0.100
MAX_RESENDS = 3
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TIMEOUT = 3.0
#: The answer to STATUS follows its ACK at once; if the ACK came and the answer did not (lost on
#: the line), STATUS is asked again after this long.
STATUS_ANSWER_WAIT = 0.3

# Version 2: reliable card events.
#: A v2 reader keeps its last 8 card events until the host acknowledges them. So the host also
#: knows that an event more than 8 ahead of the last one it has means some were dropped.
EVENT_RING = 8
#: A v2 reader resends its unacknowledged events this often...
EVENT_RESEND = 0.100
#: ...for at most this many rounds in a row without an EVENT_ACK (3 s), so a reader nobody
#: listens to goes quiet; any EVENT_ACK, even a repeated one, starts the rounds again.
EVENT_RESEND_ROUNDS = 30
#: A v2 reader beats four times a second: on a line that garbles half its frames, three seconds
#: without one valid frame (the watchdog) must stay rare.
HEARTBEAT_INTERVAL_V2 = 0.25
#: A missing event the reader has not resent within this time is gone for good (it was pushed
#: out of the reader's eight); the host then asks STATUS for the truth.
GAP_TIMEOUT = 2.0


# --------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True)
class Hello:
    """Reader → host, at start-up and in answer to IDENTIFY."""

    protocol: int = PROTOCOL_VERSION
    firmware: str = ""
    kind: str = ""


@dataclass(frozen=True)
class CardPresentMsg:
    """Reader → host: this card is in the slot now (an event, or the answer to STATUS)."""

    counter: int
    uid: bytes


@dataclass(frozen=True)
class CardRemovedMsg:
    """Reader → host: the slot is empty now (an event, or the answer to STATUS)."""

    counter: int


@dataclass(frozen=True)
class Heartbeat:
    """Reader → host once a second, carrying the last event counter so a lost event shows."""

    counter: int


@dataclass(frozen=True)
class Ack:
    """Reader → host: the host command sent with sequence number ``seq`` (0..15) arrived."""

    seq: int


@dataclass(frozen=True)
class ErrorMsg:
    """Reader → host: the firmware noticed something wrong (bad frame, unknown command)."""

    code: int
    text: str = ""


@dataclass(frozen=True)
class CardInEvent:
    """Reader → host (v2): card event ``counter``, this card in, ``age_ms`` ago; resent until acknowledged."""

    counter: int
    age_ms: int
    uid: bytes


@dataclass(frozen=True)
class CardOutEvent:
    """Reader → host (v2): card event ``counter``, the slot empty, ``age_ms`` ago; resent until acknowledged."""

    counter: int
    age_ms: int


@dataclass(frozen=True)
class EventAck:
    """Host → reader (v2): I have every card event up to ``counter``. Never itself acknowledged."""

    counter: int


@dataclass(frozen=True)
class Identify:
    """Host → reader: please say HELLO."""


@dataclass(frozen=True)
class Led:
    r: int
    g: int
    b: int


@dataclass(frozen=True)
class Beep:
    ms: int


@dataclass(frozen=True)
class Status:
    """Host → reader: tell me what is in the slot now, with the current counter."""


Message = (
    Hello
    | CardPresentMsg
    | CardRemovedMsg
    | Heartbeat
    | Ack
    | ErrorMsg
    | CardInEvent
    | CardOutEvent
    | Identify
    | Led
    | Beep
    | Status
    | EventAck
)

MESSAGE_IDS: dict[type, int] = {
    Hello: 0x01,
    CardPresentMsg: 0x02,
    CardRemovedMsg: 0x03,
    Heartbeat: 0x04,
    Ack: 0x05,
    ErrorMsg: 0x06,
    CardInEvent: 0x07,
    CardOutEvent: 0x08,
    Identify: 0x81,
    Led: 0x82,
    Beep: 0x83,
    Status: 0x84,
    EventAck: 0x85,
}
_BY_ID = {v: k for k, v in MESSAGE_IDS.items()}
HOST_COMMANDS = (Identify, Led, Beep, Status)


class FieldError(ValueError):
    """A message whose fields do not fit the protocol (out of range, too long, not ASCII)."""


# --------------------------------------------------------------------------------------------
# CRC and framing


def crc16_ccitt(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0 (check 0x29B1).

    That is exactly what ``binascii.crc_hqx`` computes, in C; the firmware keeps its own loop.
    """
    return binascii.crc_hqx(data, crc)


def _u8(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise FieldError(f"{what} must be a whole number 0..255, not {value!r}")
    return value


def _u16(value: int, what: str) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise FieldError(f"{what} must be a whole number 0..65535, not {value!r}")
    return struct.pack(">H", value)


def _text(value: str, what: str) -> bytes:
    try:
        raw = value.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise FieldError(f"{what} must be ASCII text") from None
    if len(raw) > 0xFF:
        raise FieldError(f"{what} is longer than 255 characters")
    return bytes([len(raw)]) + raw


def encode_payload(msg: Message) -> bytes:
    """The message id byte and its fields; raise :class:`FieldError` for what cannot be sent."""
    try:
        msg_id = MESSAGE_IDS[type(msg)]
    except KeyError:
        raise FieldError(f"not a Klick message: {msg!r}") from None
    if isinstance(msg, Hello):
        body = bytes([_u8(msg.protocol, "protocol")]) + _text(msg.firmware, "firmware") + _text(msg.kind, "kind")
    elif isinstance(msg, CardPresentMsg):
        uid = bytes(msg.uid) if isinstance(msg.uid, (bytes, bytearray)) else None
        if uid is None or not 1 <= len(uid) <= MAX_UID_BYTES:
            raise FieldError(f"a card UID must be 1..{MAX_UID_BYTES} bytes")
        body = _u16(msg.counter, "counter") + bytes([len(uid)]) + uid
    elif isinstance(msg, CardInEvent):
        uid = bytes(msg.uid) if isinstance(msg.uid, (bytes, bytearray)) else None
        if uid is None or not 1 <= len(uid) <= MAX_UID_BYTES:
            raise FieldError(f"a card UID must be 1..{MAX_UID_BYTES} bytes")
        body = _u16(msg.counter, "counter") + _u16(msg.age_ms, "age_ms") + bytes([len(uid)]) + uid
    elif isinstance(msg, CardOutEvent):
        body = _u16(msg.counter, "counter") + _u16(msg.age_ms, "age_ms")
    elif isinstance(msg, (CardRemovedMsg, Heartbeat, EventAck)):
        body = _u16(msg.counter, "counter")
    elif isinstance(msg, Ack):
        if _u8(msg.seq, "seq") > 0x0F:
            raise FieldError(f"seq must be 0..15, not {msg.seq!r}")
        body = bytes([0x10 | msg.seq])
    elif isinstance(msg, ErrorMsg):
        body = bytes([_u8(msg.code, "code")]) + _text(msg.text, "text")
    elif isinstance(msg, Led):
        body = bytes([_u8(msg.r, "r"), _u8(msg.g, "g"), _u8(msg.b, "b")])
    elif isinstance(msg, Beep):
        body = _u16(msg.ms, "ms")
    else:  # Identify, Status: no fields
        body = b""
    payload = bytes([msg_id]) + body
    if len(payload) > MAX_PAYLOAD:
        raise FieldError(f"the message is {len(payload)} bytes; a frame holds at most {MAX_PAYLOAD}")
    return payload


def encode(msg: Message, seq: int) -> bytes:
    """One complete frame carrying ``msg`` with sequence number ``seq`` (only its low 4 bits)."""
    payload = encode_payload(msg)
    head = bytes([len(payload) + 5, 0x10 | (seq & 0x0F)]) + payload
    return head + struct.pack(">H", crc16_ccitt(head)) + bytes([SYNC])


def _take_text(data: bytes, pos: int) -> tuple[str, int]:
    if pos >= len(data):
        raise FieldError("text length missing")
    n = data[pos]
    raw = data[pos + 1 : pos + 1 + n]
    if len(raw) != n:
        raise FieldError("text runs past the end of the message")
    if any(b > 0x7F for b in raw):
        raise FieldError("text is not ASCII")
    return raw.decode("ascii"), pos + 1 + n


def decode_payload(payload: bytes) -> Message:
    """Parse a payload (id + fields); raise :class:`FieldError` for anything that is not exact."""
    if not payload:
        raise FieldError("empty payload")
    cls = _BY_ID.get(payload[0])
    if cls is None:
        raise FieldError(f"unknown message id 0x{payload[0]:02X}")
    body = payload[1:]
    n = len(body)
    if cls is Hello:
        if n < 1:
            raise FieldError("HELLO without a protocol version")
        firmware, pos = _take_text(body, 1)
        kind, pos = _take_text(body, pos)
        msg: Message = Hello(body[0], firmware, kind)
    elif cls is CardPresentMsg:
        if n < 4 or body[2] != n - 3 or not 1 <= body[2] <= MAX_UID_BYTES:
            raise FieldError("CARD_PRESENT with a bad UID length")
        return CardPresentMsg(int.from_bytes(body[0:2], "big"), bytes(body[3:]))
    elif cls is CardInEvent:
        if n < 6 or body[4] != n - 5 or not 1 <= body[4] <= MAX_UID_BYTES:
            raise FieldError("CARD_IN_EVENT with a bad UID length")
        return CardInEvent(int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big"), bytes(body[5:]))
    elif cls is CardOutEvent:
        if n != 4:
            raise FieldError("CARD_OUT_EVENT needs exactly 4 bytes of fields")
        return CardOutEvent(int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big"))
    elif cls in (CardRemovedMsg, Heartbeat, Beep, EventAck):
        if n != 2:
            raise FieldError(f"{cls.__name__} needs exactly 2 bytes of fields")
        return cls(int.from_bytes(body, "big"))
    elif cls is Ack:
        if n != 1 or body[0] & 0xF0 != 0x10:
            raise FieldError("ACK needs one SEQ byte")
        return Ack(body[0] & 0x0F)
    elif cls is ErrorMsg:
        if n < 1:
            raise FieldError("ERROR without a code")
        text, pos = _take_text(body, 1)
        msg = ErrorMsg(body[0], text)
    elif cls is Led:
        if n != 3:
            raise FieldError("LED needs r, g, b")
        return Led(body[0], body[1], body[2])
    else:  # Identify, Status
        if n:
            raise FieldError(f"{cls.__name__} has no fields")
        return cls()
    if pos != n:
        raise FieldError("extra bytes after the message")
    return msg


class Decoder:
    """A streaming frame decoder: feed it whatever the line delivers, get whole messages back.

    It never raises and holds at most one frame (64 bytes) of unfinished input. On a bad length,
    SEQ marker, sync byte or CRC it drops bytes up to and including the next 0x7E and counts one
    error; a frame whose CRC and sync are right but whose message is unknown or malformed is
    skipped whole (its bounds are known) and counted too, so newer firmware can add messages.

    What that buys (see PROTOCOL.md): a valid frame that starts right after a 0x7E byte, or at
    the start of the stream, is decoded, unless the garbage before it happens to complete a
    frame with a correct CRC (odds about 1 in 65536 per attempt). Garbage with no 0x7E in it
    costs at most the one frame that follows it.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.errors = 0  # frames or runs of garbage dropped
        self.frames = 0  # frames decoded
        self.unknown = 0  # CRC-valid frames with an unknown or malformed message

    def _resync(self) -> None:
        self.errors += 1
        cut = self._buf.find(SYNC)
        if cut < 0:
            self._buf.clear()
        else:
            del self._buf[: cut + 1]

    def _complete_frame_inside(self) -> bool:
        """Does a complete, CRC-valid frame start right after some 0x7E in the buffer?

        Without this look-ahead, two bytes of noise such as ``40 10`` would hold back the frame
        behind them until 64 bytes had arrived: eight seconds of heartbeats for a card event.
        A real frame in flight never contains a CRC-valid frame of its own, but for the odds.
        """
        buf = self._buf
        i = buf.find(SYNC)
        while 0 <= i < len(buf) - MIN_FRAME:
            start = i + 1
            n = buf[start]
            if (
                MIN_FRAME <= n <= MAX_FRAME
                and start + n <= len(buf)
                and buf[start + 1] & 0xF0 == 0x10
                and buf[start + n - 1] == SYNC
                and crc16_ccitt(memoryview(buf)[start : start + n - 3]) == (buf[start + n - 3] << 8) | buf[start + n - 2]
            ):
                return True
            i = buf.find(SYNC, start)
        return False

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, Message]]:
        """Append ``data``; return every complete ``(seq, message)`` now available, in order."""
        out: list[tuple[int, Message]] = []
        buf = self._buf
        buf += data
        while buf:
            length = buf[0]
            if not MIN_FRAME <= length <= MAX_FRAME:
                self._resync()
                continue
            if len(buf) >= 2 and buf[1] & 0xF0 != 0x10:
                self._resync()
                continue
            if len(buf) < length:
                if self._complete_frame_inside():
                    self._resync()  # the head was garbage: a whole frame follows a 0x7E in it
                    continue
                break
            if buf[length - 1] != SYNC or crc16_ccitt(memoryview(buf)[: length - 3]) != (
                (buf[length - 3] << 8) | buf[length - 2]
            ):
                self._resync()
                continue
            seq = buf[1] & 0x0F
            payload = bytes(buf[2 : length - 3])
            del buf[:length]
            try:
                msg = decode_payload(payload)
            except FieldError:
                self.errors += 1
                self.unknown += 1
                continue
            self.frames += 1
            out.append((seq, msg))
        return out


# --------------------------------------------------------------------------------------------
# Host-side bookkeeping, clock injected


@dataclass
class Pending:
    seq: int
    msg: Message
    frame: bytes
    sent_at: float
    resends: int = 0


class CommandTracker:
    """Host commands waiting for their ACK: resend after 100 ms, at most 3 times, then give up.

    Sequence numbers cycle 0..15. At most eight commands wait at once, so an ACK can never be
    mistaken for a much older command with the same number; a ninth submission drops the
    oldest, which is then reported as given up.
    """

    MAX_WAITING = 8

    def __init__(self, resend_after: float = RESEND_AFTER, max_resends: int = MAX_RESENDS) -> None:
        self.resend_after = resend_after
        self.max_resends = max_resends
        self._next_seq = 0
        self._waiting: dict[int, Pending] = {}
        self.resent = 0
        self.given_up = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def submit(self, msg: Message, now: float) -> tuple[bytes, list[Pending]]:
        """Frame ``msg`` with the next sequence number; return it and any commands pushed out."""
        dropped: list[Pending] = []
        while len(self._waiting) >= self.MAX_WAITING or self._next_seq in self._waiting:
            oldest = min(self._waiting.values(), key=lambda p: p.sent_at)
            del self._waiting[oldest.seq]
            dropped.append(oldest)
            self.given_up += 1
        seq = self._next_seq
        self._next_seq = (seq + 1) & 0x0F
        frame = encode(msg, seq)
        self._waiting[seq] = Pending(seq, msg, frame, now)
        return frame, dropped

    def ack(self, seq: int) -> Pending | None:
        """The reader acknowledged ``seq``; return the command it belonged to, if one waited."""
        return self._waiting.pop(seq & 0x0F, None)

    def waiting_for(self, cls: type) -> bool:
        return any(isinstance(p.msg, cls) for p in self._waiting.values())

    def poll(self, now: float) -> tuple[list[bytes], list[Pending]]:
        """Frames to send again now, and commands that have run out of resends."""
        resend: list[bytes] = []
        failed: list[Pending] = []
        for p in sorted(self._waiting.values(), key=lambda p: p.seq):
            if now < p.sent_at + self.resend_after:
                continue
            if p.resends >= self.max_resends:
                del self._waiting[p.seq]
                failed.append(p)
                self.given_up += 1
            else:
                p.resends += 1
                p.sent_at = now
                resend.append(p.frame)
                self.resent += 1
        return resend, failed

    def next_deadline(self) -> float | None:
        if not self._waiting:
            return None
        return min(p.sent_at for p in self._waiting.values()) + self.resend_after

    def clear(self) -> None:
        self._waiting.clear()

    def untracked(self, msg: Message) -> bytes:
        """Frame a message nobody acknowledges (EVENT_ACK) with the next sequence number not waiting."""
        seq = self._next_seq
        for _ in range(16):
            if seq not in self._waiting:
                break
            seq = (seq + 1) & 0x0F
        self._next_seq = (seq + 1) & 0x0F
        return encode(msg, seq)


class CounterWatch:
    """Notices a lost reader event from the 16-bit event counter.

    Each CARD_PRESENT/CARD_REMOVED event advances the counter by one; a STATUS answer and a
    HEARTBEAT repeat the current value. Anything else means an event went missing on the way.
    """

    def __init__(self) -> None:
        self.last: int | None = None
        self.gaps = 0

    def reset(self) -> None:
        self.last = None

    def truth(self, counter: int) -> None:
        """Take ``counter`` as the reader's current value (a STATUS answer)."""
        self.last = counter & 0xFFFF

    def event(self, counter: int) -> bool:
        """A card event arrived; return True if one or more events before it were lost."""
        counter &= 0xFFFF
        last, self.last = self.last, counter
        if last is None or counter in (last, (last + 1) & 0xFFFF):
            return False
        self.gaps += 1
        return True

    def heartbeat(self, counter: int) -> bool:
        """A heartbeat arrived; return True if it reports events the host never saw."""
        if self.last is None or (counter & 0xFFFF) == self.last:
            return False
        self.gaps += 1
        return True


class EventWindow:
    """Version 2: the reader's card events, applied in counter order and each exactly once.

    The reader resends every card event until the host acknowledges it, so an event may come
    late, twice, or after a later one whose first sending got through. ``last`` is the counter
    of the last event applied (or of the STATUS answer taken as the truth). :meth:`classify`
    sorts a counter: ``same`` or ``duplicate`` (at or just behind ``last``: already applied),
    ``ahead`` (at most EVENT_RING ahead: held until the ones before it arrive, then applied in
    order), or ``outside`` (further ahead, or further behind than the reader keeps: the reader
    restarted or dropped events, and only a STATUS answer can say what is true now). While
    ``last`` is None (no truth yet) nothing is applied. A gap that stays open GAP_TIMEOUT is
    given up: what is held is applied, and the caller asks for the truth.
    """

    def __init__(self, size: int = EVENT_RING, gap_timeout: float = GAP_TIMEOUT) -> None:
        self.size = size
        self.gap_timeout = gap_timeout
        self.last: int | None = None
        self.known: int | None = None  # the highest counter the reader has shown
        self.held: dict[int, Action] = {}
        self.gap_since: float | None = None
        self.gaps = 0  # gaps seen (an event, heartbeat or answer ahead of what was applied)
        self.lost = 0  # gaps given up

    def _ahead(self, counter: int) -> int:
        assert self.last is not None
        return (counter - self.last) & 0xFFFF

    def classify(self, counter: int) -> str:
        """``none`` (no truth yet), ``same``, ``duplicate``, ``ahead`` or ``outside``."""
        if self.last is None:
            return "none"
        d = self._ahead(counter)
        if d == 0:
            return "same"
        if d <= self.size:
            return "ahead"
        if 0x10000 - d < self.size:
            return "duplicate"
        return "outside"

    def truth(self, counter: int) -> None:
        """The reader's counter is ``counter`` and nothing before it is owed (a STATUS answer)."""
        self.last = self.known = counter & 0xFFFF
        self.held.clear()
        self.gap_since = None

    def forget(self) -> None:
        self.last = self.known = None
        self.held.clear()
        self.gap_since = None

    def saw(self, counter: int, now: float) -> None:
        """The reader has reached ``counter``, which :meth:`classify` called ``ahead``."""
        counter &= 0xFFFF
        if self.known is None or self._ahead(counter) > self._ahead(self.known):
            self.known = counter
        if self.gap_since is None and self.gap_open():
            self.gap_since = now
            self.gaps += 1

    def gap_open(self) -> bool:
        return self.last is not None and self.known is not None and 0 < self._ahead(self.known) <= self.size

    def offer(self, counter: int, level: Action, now: float) -> list[Action]:
        """An event :meth:`classify` called ``ahead``: the levels that can be applied now, in order."""
        counter &= 0xFFFF
        self.saw(counter, now)
        self.held[counter] = level
        out: list[Action] = []
        assert self.last is not None
        following = (self.last + 1) & 0xFFFF
        while following in self.held:
            out.append(self.held.pop(following))
            self.last = following
            following = (following + 1) & 0xFFFF
        if not self.gap_open():
            self.gap_since = None
        return out

    def expired(self, now: float) -> bool:
        return self.gap_since is not None and now >= self.gap_since + self.gap_timeout

    def deadline(self) -> float | None:
        return None if self.gap_since is None else self.gap_since + self.gap_timeout

    def give_up(self) -> list[Action]:
        """The missing events are gone: what was held, in counter order; then no truth until STATUS."""
        self.lost += 1
        if self.last is None:
            out: list[Action] = []
        else:
            out = [self.held[c] for c in sorted(self.held, key=self._ahead)]
        self.forget()
        return out


class Watchdog:
    """No sign of life for ``timeout`` seconds means the reader is lost."""

    def __init__(self, timeout: float = HEARTBEAT_TIMEOUT, now: float = 0.0) -> None:
        self.timeout = timeout
        self.last = now

    def kick(self, now: float) -> None:
        self.last = now

    def expired(self, now: float) -> bool:
        return now >= self.last + self.timeout

    def deadline(self) -> float:
        return self.last + self.timeout


# --------------------------------------------------------------------------------------------
# The host side of one connection, as a pure state machine


@dataclass(frozen=True)
class Write:
    """Send these bytes to the reader."""

    frame: bytes


@dataclass(frozen=True)
class Present:
    """The slot holds this card (raw UID bytes; the driver normalises them) from ``at`` on (None: now)."""

    uid: bytes
    at: float | None = None


@dataclass(frozen=True)
class Absent:
    """The slot is empty from ``at`` on (None: now)."""

    at: float | None = None


@dataclass(frozen=True)
class Up:
    """The reader answered the handshake."""

    hello: Hello


@dataclass(frozen=True)
class Down:
    """This connection is finished; ``detail`` is a plain sentence for a carer."""

    detail: str


@dataclass(frozen=True)
class Note:
    """Something worth a log line, not worth a status change."""

    text: str


Action = Write | Present | Absent | Up | Down | Note

NOT_ANSWERING = "The card reader is not answering."
STOPPED = "The card reader stopped sending signs of life. It may be unplugged."


@dataclass
class HostSession:
    """Everything the host decides about one open connection, given messages and the time.

    Start-up: send IDENTIFY, wait for HELLO, then send STATUS so the host learns what is in the
    slot right now; with that answer the reader counts as connected (:class:`Up`). Card events become :class:`Present`/:class:`Absent` levels. During the
    handshake a missing ACK is not fatal: a reader that resets when the port opens sends its
    start-up HELLO late, so only the watchdog ends the wait. Until HELLO only HELLO feeds that
    watchdog: a reader that beats but never says HELLO (its answer lost on the line) is asked
    again at each heartbeat and, failing that, reopened after three seconds, rather than kept in
    the handshake for ever by its own heartbeats. Three seconds without any valid frame ends the
    session with :class:`Down`; the driver then reconnects.

    Version 1: a counter gap sends STATUS, whose answer is taken as the truth, and a command that
    runs out of resends ends the session. Version 2: every card event is acknowledged
    (EVENT_ACK) and resent by the reader until it is, and :class:`EventWindow` applies them in
    order, each at the time the reader says it happened; a gap is answered with the same
    EVENT_ACK again, which makes the reader resend at once. STATUS is the truth only when the
    host has none (start-up, a restarted reader, events given up). A command that runs out of
    resends is reported (STATUS is asked again); only three seconds of commands without any ACK
    end the session, so a noisy line that still gets through is not torn down.

    ``resume``: the last event counter a previous connection to the same reader applied, a few
    seconds ago. If the reader's STATUS answer shows it only a few events further (it did not
    restart), those events are fetched from it rather than lost with the old connection.
    """

    resend_after: float = RESEND_AFTER
    max_resends: int = MAX_RESENDS
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    resume: int | None = None
    state: str = "new"  # new → handshake → ready → down
    hello: Hello | None = None
    version: int = 0  # the reader's protocol version, from its HELLO
    tracker: CommandTracker = field(init=False)
    counter: CounterWatch = field(init=False)
    window: EventWindow = field(init=False)
    watchdog: Watchdog = field(init=False)

    def __post_init__(self) -> None:
        self.tracker = CommandTracker(self.resend_after, self.max_resends)
        self.counter = CounterWatch()
        self.window = EventWindow()
        self.watchdog = Watchdog(self.heartbeat_timeout)
        self._asked = False  # STATUS sent, its answer not yet seen
        self._asked_at = 0.0
        self._up = False  # Up reported: the first STATUS answer is in
        self._unacked_since: float | None = None  # v2: commands waiting, and no ACK since then

    def start(self, now: float) -> list[Action]:
        self.state = "handshake"
        self.watchdog.kick(now)
        return self._send(Identify(), now)

    def _send(self, msg: Message, now: float) -> list[Action]:
        frame, dropped = self.tracker.submit(msg, now)
        if self._unacked_since is None:
            self._unacked_since = now
        actions: list[Action] = [Write(frame)]
        for p in dropped:
            actions.append(Note(f"gave up on {type(p.msg).__name__}: too many commands waiting"))
        return actions

    def _down(self, detail: str) -> list[Action]:
        self.state = "down"
        self.tracker.clear()
        return [Down(detail)]

    def command(self, msg: Message, now: float) -> list[Action]:
        """Queue a host command (LED, BEEP, STATUS, IDENTIFY); only a live session sends it."""
        if self.state != "ready":
            return []
        return self._send(msg, now)

    def _ask_status(self, now: float) -> list[Action]:
        if self._asked:
            return []
        self._asked = True
        self._asked_at = now
        return self._send(Status(), now)

    def _answer_lost(self) -> bool:
        """STATUS was acknowledged (or given up), but its answer never came."""
        return self._asked and self.state == "ready" and not self.tracker.waiting_for(Status)

    def receive(self, msg: Message, now: float) -> list[Action]:
        if self.state in ("new", "down"):
            return []
        if self.state == "ready" or isinstance(msg, Hello):
            self.watchdog.kick(now)
        if isinstance(msg, Ack):
            if self.tracker.ack(msg.seq) is not None:
                self._unacked_since = now if len(self.tracker) else None
            return []
        if isinstance(msg, Hello):
            if msg.protocol not in SUPPORTED_VERSIONS:
                return self._down(
                    f"The card reader speaks protocol version {msg.protocol}; this bridge speaks versions "
                    f"{', '.join(map(str, SUPPORTED_VERSIONS))}. Its firmware needs updating."
                )
            # A HELLO while ready means the firmware restarted: its counter starts over.
            restarted = self.state == "ready"
            self.hello = msg
            self.version = msg.protocol
            self.counter.reset()
            self.window.forget()
            if not restarted and self.resume is not None:
                self.window.truth(self.resume)  # a hint only: the STATUS answer checks it
            if self.state == "handshake":
                self.state = "ready"
                self.tracker.clear()  # the IDENTIFY is answered, ACK or not
                self._unacked_since = None
            return self._ask_status(now)
        if isinstance(msg, ErrorMsg):
            return [Note(f"the card reader reports error {msg.code}: {msg.text}")]
        if self.state != "ready":
            if isinstance(msg, Heartbeat) and not self.tracker.waiting_for(Identify):
                return self._send(Identify(), now)  # alive, but our question got lost
            return []  # events before HELLO: the STATUS after it tells the truth
        actions = self._receive_v2(msg, now) if self.version >= 2 else self._receive_v1(msg, now)
        if not self._up and any(isinstance(a, (Present, Absent)) for a in actions):
            # Connected means: the host knows what is in the slot (the first STATUS answer).
            self._up = True
            assert self.hello is not None
            actions.insert(0, Up(self.hello))
        return actions

    def _receive_v1(self, msg: Message, now: float) -> list[Action]:
        if isinstance(msg, (CardPresentMsg, CardRemovedMsg)):
            level: Action = Present(msg.uid) if isinstance(msg, CardPresentMsg) else Absent()
            if self._asked or self.counter.last is None:
                # The STATUS answer (or an event newer than the question): the truth either way.
                self._asked = False
                self.counter.truth(msg.counter)
                return [level]
            if self.counter.event(msg.counter):
                return [level, Note("a card event was lost on the line; asking the reader")] + self._ask_status(now)
            return [level]
        if isinstance(msg, Heartbeat):
            if self.counter.heartbeat(msg.counter):
                return [Note("the heartbeat shows a lost card event; asking the reader")] + self._ask_status(now)
            return []
        return [Note(f"unexpected {type(msg).__name__} from the reader")]

    # ---- version 2 ----------------------------------------------------------------------------

    def _event_ack(self) -> Action:
        assert self.window.last is not None
        return Write(self.tracker.untracked(EventAck(self.window.last)))

    def _resync(self, why: str, now: float) -> list[Action]:
        self.window.forget()
        return [Note(why)] + self._ask_status(now)

    def _receive_v2(self, msg: Message, now: float) -> list[Action]:
        window = self.window
        if isinstance(msg, (CardInEvent, CardOutEvent)):
            at = now - msg.age_ms / 1000.0
            level: Action = Present(msg.uid, at) if isinstance(msg, CardInEvent) else Absent(at)
            kind = window.classify(msg.counter)
            if kind == "none":
                return []  # no truth yet: the STATUS answer comes first, and the reader resends
            if kind == "outside":
                return self._resync("a card event is out of step with the ones before (the reader restarted?)", now)
            applied = window.offer(msg.counter, level, now) if kind == "ahead" else []
            return [*applied, self._event_ack()]
        if isinstance(msg, (CardPresentMsg, CardRemovedMsg)):  # the answer to STATUS: the slot now
            self._asked = False
            level = Present(msg.uid) if isinstance(msg, CardPresentMsg) else Absent()
            kind = window.classify(msg.counter)
            if kind == "same":
                return [level]
            if kind == "ahead":
                window.saw(msg.counter, now)  # its events are on their way: ask for them at once
                return [self._event_ack()]
            window.truth(msg.counter)  # no truth yet, or the reader restarted: this is it
            return [level, self._event_ack()]
        if isinstance(msg, Heartbeat):
            kind = window.classify(msg.counter)
            if kind in ("none", "same"):
                return []
            if kind == "ahead":
                window.saw(msg.counter, now)
                return [self._event_ack()]  # the same EVENT_ACK again: resend what I lack
            return self._resync("the reader's event counter went back or jumped (it restarted?); asking the reader", now)
        return [Note(f"unexpected {type(msg).__name__} from the reader")]

    def tick(self, now: float) -> list[Action]:
        """Resend what is due; end the session if the reader has gone quiet."""
        if self.state in ("new", "down"):
            return []
        if self.watchdog.expired(now):
            return self._down(NOT_ANSWERING if self.state == "handshake" else STOPPED)
        resend, failed = self.tracker.poll(now)
        actions: list[Action] = [Write(f) for f in resend]
        status_failed = any(isinstance(p.msg, Status) for p in failed)
        if status_failed:
            self._asked = False
        if failed and self.state == "ready":
            if self.version < 2:
                return self._down(NOT_ANSWERING)
            for p in failed:
                if not isinstance(p.msg, Status):
                    actions.append(Note(f"gave up on {type(p.msg).__name__}: the reader did not acknowledge it"))
            if status_failed:
                actions += self._ask_status(now)  # the reader beats, so it is there: ask again
            elif not len(self.tracker):
                self._unacked_since = None
        if self._answer_lost() and now >= self._asked_at + STATUS_ANSWER_WAIT:
            self._asked = False
            actions += self._ask_status(now)
        if self.version >= 2 and self.state == "ready":
            if self._unacked_since is not None and now >= self._unacked_since + self.heartbeat_timeout:
                return self._down(NOT_ANSWERING)
            if self.window.expired(now):
                actions += self.window.give_up()
                actions += self._resync("a card event was lost for good; asking the reader what is in the slot", now)
        return actions

    def next_deadline(self) -> float:
        """When :meth:`tick` next has something to do."""
        deadlines = [self.watchdog.deadline()]
        pending = self.tracker.next_deadline()
        if pending is not None:
            deadlines.append(pending)
        if self._answer_lost():
            deadlines.append(self._asked_at + STATUS_ANSWER_WAIT)
        if self.version >= 2 and self.state == "ready":
            gap = self.window.deadline()
            if gap is not None:
                deadlines.append(gap)
            if self._unacked_since is not None:
                deadlines.append(self._unacked_since + self.heartbeat_timeout)
        return min(deadlines)
