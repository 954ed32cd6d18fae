"""The Klick wire protocol between a reader's microcontroller and the host, as pure code.

Bytes in, messages out, and the host's bookkeeping (resends, the event counter, the heartbeat
watchdog) as objects driven by an injected clock. Nothing here touches a file descriptor, so
hypothesis can hammer every path and the serial driver stays a thin shell. PROTOCOL.md is the
human-readable contract; this module is the executable one and the two must agree.

Frame (modelled on Klipper's host-MCU framing)::

    LEN SEQ PAYLOAD... CRC_HI CRC_LO SYNC

LEN counts the whole frame (6..64), SEQ is ``0x10 | (seq & 0x0F)``, PAYLOAD is a message id and
its fields, CRC is CRC-16/CCITT-FALSE over LEN..end of PAYLOAD, SYNC is 0x7E.
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
PROTOCOL_VERSION = 1

RESEND_AFTER = 0.100
MAX_RESENDS = 3
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TIMEOUT = 3.0


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


Message = Hello | CardPresentMsg | CardRemovedMsg | Heartbeat | Ack | ErrorMsg | Identify | Led | Beep | Status

MESSAGE_IDS: dict[type, int] = {
    Hello: 0x01,
    CardPresentMsg: 0x02,
    CardRemovedMsg: 0x03,
    Heartbeat: 0x04,
    Ack: 0x05,
    ErrorMsg: 0x06,
    Identify: 0x81,
    Led: 0x82,
    Beep: 0x83,
    Status: 0x84,
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
    elif isinstance(msg, (CardRemovedMsg, Heartbeat)):
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
    elif cls in (CardRemovedMsg, Heartbeat, Beep):
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
    """The slot holds this card now (raw UID bytes; the driver normalises them)."""

    uid: bytes


@dataclass(frozen=True)
class Absent:
    """The slot is empty now."""


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
    slot right now. Card events become :class:`Present`/:class:`Absent` levels. A counter gap
    sends STATUS (whose answer is taken as the truth). A command that runs out of resends, or
    three seconds without any valid frame, ends the session with :class:`Down`; the driver then
    reconnects. During the handshake a missing ACK is not fatal: a reader that resets when the
    port opens sends its start-up HELLO late, so only the watchdog ends the wait. Until HELLO
    only HELLO feeds that watchdog: a reader that beats but never says HELLO (its answer lost on
    the line) is asked again at each heartbeat and, failing that, reopened after three seconds,
    rather than kept in the handshake for ever by its own heartbeats.
    """

    resend_after: float = RESEND_AFTER
    max_resends: int = MAX_RESENDS
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    state: str = "new"  # new → handshake → ready → down
    hello: Hello | None = None
    tracker: CommandTracker = field(init=False)
    counter: CounterWatch = field(init=False)
    watchdog: Watchdog = field(init=False)

    def __post_init__(self) -> None:
        self.tracker = CommandTracker(self.resend_after, self.max_resends)
        self.counter = CounterWatch()
        self.watchdog = Watchdog(self.heartbeat_timeout)
        self._asked = False  # STATUS sent, its answer not yet seen

    def start(self, now: float) -> list[Action]:
        self.state = "handshake"
        self.watchdog.kick(now)
        return self._send(Identify(), now)

    def _send(self, msg: Message, now: float) -> list[Action]:
        frame, dropped = self.tracker.submit(msg, now)
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
        return self._send(Status(), now)

    def receive(self, msg: Message, now: float) -> list[Action]:
        if self.state in ("new", "down"):
            return []
        if self.state == "ready" or isinstance(msg, Hello):
            self.watchdog.kick(now)
        if isinstance(msg, Ack):
            self.tracker.ack(msg.seq)
            return []
        if isinstance(msg, Hello):
            if msg.protocol != PROTOCOL_VERSION:
                return self._down(
                    f"The card reader speaks protocol version {msg.protocol}; "
                    f"this bridge speaks version {PROTOCOL_VERSION}. Its firmware needs updating."
                )
            # A HELLO while ready means the firmware restarted: its counter starts over.
            self.hello = msg
            self.counter.reset()
            actions: list[Action] = []
            if self.state == "handshake":
                self.state = "ready"
                self.tracker.clear()  # the IDENTIFY is answered, ACK or not
                actions.append(Up(msg))
            return actions + self._ask_status(now)
        if isinstance(msg, ErrorMsg):
            return [Note(f"the card reader reports error {msg.code}: {msg.text}")]
        if self.state != "ready":
            if isinstance(msg, Heartbeat) and not self.tracker.waiting_for(Identify):
                return self._send(Identify(), now)  # alive, but our question got lost
            return []  # events before HELLO: the STATUS after it tells the truth
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

    def tick(self, now: float) -> list[Action]:
        """Resend what is due; end the session if the reader has gone quiet."""
        if self.state in ("new", "down"):
            return []
        if self.watchdog.expired(now):
            return self._down(NOT_ANSWERING if self.state == "handshake" else STOPPED)
        resend, failed = self.tracker.poll(now)
        if any(isinstance(p.msg, Status) for p in failed):
            self._asked = False
        if failed and self.state == "ready":
            return self._down(NOT_ANSWERING)
        return [Write(f) for f in resend]

    def next_deadline(self) -> float:
        """When :meth:`tick` next has something to do."""
        deadline = self.watchdog.deadline()
        pending = self.tracker.next_deadline()
        return deadline if pending is None else min(deadline, pending)
