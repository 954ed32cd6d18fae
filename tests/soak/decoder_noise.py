"""A million frames through the host's decoder with 5 % of them corrupted.

What "lost" means here, exactly: protocol.Decoder promises that a valid frame starting right
after a 0x7E byte (or at the start of the stream) is decoded, whatever noise came before, unless
the noise itself happens to form a CRC-valid frame (about one chance in 3x10^8 per candidate).
Every frame ends in 0x7E, so the generator keeps that boundary: a corruption changes one byte or
two adjacent bytes of a frame, drops 1-3 of its bytes, or inserts 1-40 random bytes (which may
hold 0x7E) between frames followed by a 0x7E; it never touches a frame's closing 0x7E. One or
two changed adjacent bytes are a burst of at most 16 bits, which CRC-16/CCITT always detects, so
a corrupted frame can never pass as a different message. Under those rules every intact frame
must come out, in order, and nothing else may:

  crashes        the decoder raised
  phantom cards  a CARD_PRESENT came out that was never sent intact
  events lost    an intact CARD_PRESENT/CARD_REMOVED frame did not come out

Then the whole chain on a line with real noise, end bytes included (issue 10.6): the reference
firmware under CPython on a fake Pico (tests/pico_board.py) behind a pseudo-terminal, the
bridge's real serial driver, place-and-lift machine and socket, and :class:`Noise` between
firmware and bridge garbling 20 % and then 50 % of the frames each way. Cards go in for 0.3 s
each; "brief insertions lost" counts those that never came out of the socket as card_present.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from firmware_bridge import protocol as p

FULL, QUICK = 1_000_000, 20_000
CORRUPT = 0.05
#: Brief insertions per noise level (and the levels).
BRIEF_FULL, BRIEF_QUICK = 60, 5
NOISE_LEVELS = (0.2, 0.5)


def _message(rng: random.Random, counter: int) -> p.Message:
    r = rng.random()
    if r < 0.35:
        return p.CardPresentMsg(counter, rng.randbytes(rng.choice((4, 7, 10))))
    if r < 0.70:
        return p.CardRemovedMsg(counter)
    if r < 0.95:
        return p.Heartbeat(counter)
    if r < 0.99:
        return p.Ack(rng.randrange(16))
    return p.Hello(1, "soak-1.0", "slot")


def corrupt(rng: random.Random, frame: bytes, end_byte: bool = False) -> tuple[bytes, bool]:
    """One corruption of ``frame``: (bytes to send, whether the frame itself still counts as sent intact).

    It changes one byte or two adjacent bytes, drops 1-3 bytes, or puts 1-40 random bytes before
    the frame. ``end_byte=False`` never touches the closing 0x7E and ends inserted noise with
    one (the decoder's promise is about frames after a 0x7E); ``end_byte=True`` may hit any byte,
    as real line noise does, so a garbled frame can take the next one down with it.
    """
    kind = rng.randrange(4)
    body = bytearray(frame)
    keep = 0 if end_byte else 1  # bytes at the end that stay untouched
    if len(body) < 3 and kind in (1, 2):
        kind = 0
    if kind == 0:
        i = rng.randrange(len(body) - keep)
        body[i] ^= rng.randrange(1, 256)
    elif kind == 1:
        i = rng.randrange(len(body) - keep - 1)
        body[i] ^= rng.randrange(1, 256)
        body[i + 1] ^= rng.randrange(1, 256)
    elif kind == 2:
        for _ in range(rng.randint(1, 3)):
            if len(body) > keep:
                del body[rng.randrange(len(body) - keep)]
    else:
        noise = rng.randbytes(rng.randint(1, 40)) + (b"" if end_byte else bytes([p.SYNC]))
        return noise + frame, True
    return bytes(body), False


class Noise:
    """One direction of a noisy line: garbles ``rate`` of what is written through it, any byte
    of it (its end byte too), with :func:`corrupt`. Called once per frame (the firmware and the
    host write one frame at a time). ``first_sending_of_events`` also garbles, always, the first
    sending of every card event, so that a reader which sends an event only once loses it."""

    def __init__(self, rate: float, seed: int = 0, first_sending_of_events: bool = False) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.first = first_sending_of_events
        self._sent: set[tuple[int, int]] = set()
        self.frames = 0
        self.garbled = 0

    def __call__(self, data: bytes) -> bytes:
        self.frames += 1
        hit = self.rng.random() < self.rate
        if self.first and len(data) >= 5 and data[2] in (0x02, 0x03, 0x07, 0x08):
            key = (data[2] in (0x02, 0x07), (data[3] << 8) | data[4])  # (card in?, counter)
            if key not in self._sent:
                self._sent.add(key)
                hit = True
        if not hit:
            return data
        self.garbled += 1
        return corrupt(self.rng, data, end_byte=True)[0]


def soak(frames: int, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    dec = p.Decoder()
    expected: deque[p.Message] = deque()
    stats = dict(
        frames=frames,
        corrupted=0,
        intact=0,
        card_events=0,
        crashes=0,
        phantom_cards=0,
        phantoms=0,
        lost_events=0,
        lost_frames=0,
        max_buffer=0,
    )
    counter = 0

    def take(decoded: list[tuple[int, p.Message]]) -> None:
        for _seq, msg in decoded:
            # Everything before the match was lost; greedy matching is exact when nothing is phantom.
            if msg in expected:
                while expected:
                    head = expected.popleft()
                    if head == msg:
                        break
                    stats["lost_frames"] += 1
                    if isinstance(head, (p.CardPresentMsg, p.CardRemovedMsg)):
                        stats["lost_events"] += 1
            else:
                stats["phantoms"] += 1
                if isinstance(msg, p.CardPresentMsg):
                    stats["phantom_cards"] += 1

    batch = bytearray()
    for n in range(frames):
        msg = _message(rng, counter)
        if isinstance(msg, (p.CardPresentMsg, p.CardRemovedMsg)):
            counter = (counter + 1) & 0xFFFF
        frame = p.encode(msg, n)
        if rng.random() < CORRUPT:
            stats["corrupted"] += 1
            frame, intact = corrupt(rng, frame)
        else:
            intact = True
        if intact:
            stats["intact"] += 1
            expected.append(msg)
            if isinstance(msg, (p.CardPresentMsg, p.CardRemovedMsg)):
                stats["card_events"] += 1
        batch += frame
        if len(batch) > 64 * 1024 or n == frames - 1:
            pos = 0
            while pos < len(batch):  # split the way a serial line delivers it: any size
                size = rng.choice((1, 2, 3, 7, 16, 64, 100, 512, 4096))
                try:
                    take(dec.feed(batch[pos : pos + size]))
                except Exception:
                    stats["crashes"] += 1
                    dec = p.Decoder()
                stats["max_buffer"] = max(stats["max_buffer"], len(dec._buf))
                pos += size
            batch.clear()
    for head in expected:
        stats["lost_frames"] += 1
        if isinstance(head, (p.CardPresentMsg, p.CardRemovedMsg)):
            stats["lost_events"] += 1
    stats["decoder_errors"] = dec.errors
    return stats


def brief_insertions(rate: float, cards: int, seed: int = 1) -> dict:
    """Cards in for 0.3 s through the reference firmware, a noisy line and the real bridge."""
    from firmware_bridge.daemon import Bridge
    from klick.bridge_client import iter_events
    from klick.config import load_config
    from klick.events import CardPresent, ReaderStatus
    from tests.pico_board import Board, FirmwareOnPty, firmware_on

    folder = Path(tempfile.mkdtemp(prefix="klick-soak-noise-", dir="/tmp"))
    link, sock = folder / "klick-reader", folder / "b.sock"
    cfg = load_config()
    cfg = replace(cfg, reader=replace(cfg.reader, driver="serial", device=str(link)), paths=replace(cfg.paths, socket=sock))
    to_host, to_reader = Noise(rate, seed), Noise(rate, seed + 1)
    uids = [f"04{seed:02X}{i:010X}" for i in range(cards)]  # 7-byte UIDs, as NTAGs have
    seen: list[str] = []
    states: list[str] = []
    with firmware_on(Board()) as board:
        firmware = FirmwareOnPty(board, link, to_host, to_reader)
        bridge = Bridge(cfg)
        bridge.open()
        runner = threading.Thread(target=bridge.run, kwargs={"handle_signals": False}, daemon=True)
        runner.start()
        try:
            events = iter_events(sock, timeout=60)
            for event in events:
                if isinstance(event, ReaderStatus) and event.state == "connected":
                    break

            def listen() -> None:
                for event in events:
                    if isinstance(event, CardPresent):
                        seen.append(event.uid)
                    elif isinstance(event, ReaderStatus):
                        states.append(event.state)
                    if seen[-1:] == [uids[-1]]:
                        return

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            time.sleep(1.0)  # the handshake's STATUS has had its answer
            for uid in uids:
                board.insert(uid)
                time.sleep(0.3)
                board.remove()
                time.sleep(0.7)
            listener.join(15)
        finally:
            bridge.stop()
            runner.join(10)
            firmware.close()
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()
    return dict(
        rate=rate,
        cards=cards,
        lost=sum(1 for uid in uids if uid not in seen),
        phantoms=sum(1 for uid in seen if uid not in uids),
        twice=len(seen) - len(set(seen)),
        frames=to_host.frames + to_reader.frames,
        garbled=to_host.garbled + to_reader.garbled,
        reconnects=states.count("lost"),
    )


def run(quick: bool = False) -> list[tuple[str, str, str, bool]]:
    s = soak(QUICK if quick else FULL)
    n = f"{s['frames']:,} frames, {s['corrupted']:,} corrupted"
    rows = [
        (f"decoder: crashes ({n})", str(s["crashes"]), "0", s["crashes"] == 0),
        ("decoder: phantom cards", str(s["phantom_cards"]), "0", s["phantom_cards"] == 0),
        (f"decoder: valid card events lost (of {s['card_events']:,})", str(s["lost_events"]), "0", s["lost_events"] == 0),
        (f"decoder: any intact frame lost (of {s['intact']:,})", str(s["lost_frames"]), "0", s["lost_frames"] == 0),
        ("decoder: largest buffer held", f"{s['max_buffer']} bytes", "< 64", s["max_buffer"] < 64),
    ]
    for n, rate in enumerate(NOISE_LEVELS):
        b = brief_insertions(rate, BRIEF_QUICK if quick else BRIEF_FULL, seed=n + 1)
        noise = f"{rate:.0%} noise, {b['garbled']:,} of {b['frames']:,} frames garbled"
        rows += [
            (f"noisy line: brief insertions (0.3 s) lost ({noise})", f"{b['lost']} of {b['cards']}", "0", b["lost"] == 0),
            (
                f"noisy line: phantom or doubled cards ({rate:.0%} noise)",
                str(b["phantoms"] + b["twice"]),
                "0",
                b["phantoms"] + b["twice"] == 0,
            ),
            (f"noisy line: reader reported lost ({rate:.0%} noise)", str(b["reconnects"]), "-", True),
        ]
    return rows


NOTE = (
    "decoder: a corruption changes 1 byte or 2 adjacent bytes, drops 1-3 bytes, or inserts noise, never a "
    "frame's closing 0x7E; 'lost' counts intact frames after such a boundary (protocol.Decoder's promise). "
    "noisy line: the same corruptions, any byte of a frame (its end byte too), between the reference firmware "
    "and the real bridge through a pty, both ways."
)
