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
"""

from __future__ import annotations

import random
from collections import deque

from firmware_bridge import protocol as p

FULL, QUICK = 1_000_000, 20_000
CORRUPT = 0.05


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


def _corrupt(rng: random.Random, frame: bytes) -> tuple[bytes, bool]:
    """(bytes to send, whether the frame itself still counts as sent intact)."""
    kind = rng.randrange(4)
    body = bytearray(frame)
    last = len(body) - 1  # the closing 0x7E stays
    if kind == 0:
        i = rng.randrange(last)
        body[i] ^= rng.randrange(1, 256)
    elif kind == 1:
        i = rng.randrange(last - 1)
        body[i] ^= rng.randrange(1, 256)
        body[i + 1] ^= rng.randrange(1, 256)
    elif kind == 2:
        for _ in range(rng.randint(1, 3)):
            del body[rng.randrange(len(body) - 1)]
    else:
        noise = rng.randbytes(rng.randint(1, 40)) + bytes([p.SYNC])
        return noise + frame, True
    return bytes(body), False


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
            frame, intact = _corrupt(rng, frame)
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


def run(quick: bool = False) -> list[tuple[str, str, str, bool]]:
    s = soak(QUICK if quick else FULL)
    n = f"{s['frames']:,} frames, {s['corrupted']:,} corrupted"
    return [
        (f"decoder: crashes ({n})", str(s["crashes"]), "0", s["crashes"] == 0),
        ("decoder: phantom cards", str(s["phantom_cards"]), "0", s["phantom_cards"] == 0),
        (f"decoder: valid card events lost (of {s['card_events']:,})", str(s["lost_events"]), "0", s["lost_events"] == 0),
        (f"decoder: any intact frame lost (of {s['intact']:,})", str(s["lost_frames"]), "0", s["lost_frames"] == 0),
        ("decoder: largest buffer held", f"{s['max_buffer']} bytes", "< 64", s["max_buffer"] < 64),
    ]


NOTE = (
    "decoder: a corruption changes 1 byte or 2 adjacent bytes, drops 1-3 bytes, or inserts noise, never a "
    "frame's closing 0x7E; 'lost' counts intact frames after such a boundary (protocol.Decoder's promise)."
)
