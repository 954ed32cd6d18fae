"""100,000 insert/remove cycles through the bridge's and the launcher's logic, in one process.

Raw reader levels go into the bridge's place-and-lift machine (with its real settle and grace
times, on a simulated clock), the card events it emits go through the socket's JSON encoding
and back, and into the launcher's pure session logic, whose effects are carried out as the app
would (an action that starts reports back as started). Every tenth card is unknown. Counted:

  events lost   a cycle that did not give exactly one card_present and one card_removed, or a
                known card whose action did not start and stop, or a screen not back home
  RSS growth    resident memory after the run minus after a warm-up of 1,000 cycles
"""

from __future__ import annotations

import gc
from pathlib import Path

FULL, QUICK = 100_000, 2_000
WARMUP = 1_000


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(cycles: int) -> dict[str, int]:
    from cards.model import Card, Web
    from cards.registry import Registry
    from firmware_bridge.placelift import PlaceLift
    from klick.events import CardPresent, CardRemoved, ReaderStatus, decode_event, encode_event
    from launcher.session import Home, Record, Session, StartAction, StopAction

    registry = Registry(tuple(Card(f"04{i:012X}", f"Kort {i}", Web(f"https://example.se/{i}")) for i in range(50)))
    machine = PlaceLift("reader", settle_ms=80, grace_ms=1200, wall=lambda: 1.7e9)
    session = Session(lookup=registry.get)
    session.event(ReaderStatus("connected", "reader", "Soak reader.", "slot"))
    t = 0.0
    lost = 0
    started = stopped = unknown = 0
    baseline = 0

    def deliver(events) -> tuple[int, int, list]:
        present = removed = 0
        effects: list = []
        for ev in events:
            ev = decode_event(encode_event(ev))  # the socket's wire format, both ways
            present += isinstance(ev, CardPresent)
            removed += isinstance(ev, CardRemoved)
            for eff in session.event(ev):
                effects.append(eff)
                if isinstance(eff, StartAction):
                    effects += session.action_started(eff.card)
        return present, removed, effects

    for n in range(cycles):
        if n == WARMUP:
            gc.collect()
            baseline = rss_kb()
        known = n % 10 != 9
        uid = f"04{n % 50:012X}" if known else f"99{n:012X}"
        # A card slid in brushes the antenna first: a flicker, then a steady read.
        machine.observe(uid, t)
        machine.observe(None, t + 0.01)
        machine.observe(uid, t + 0.02)
        p1, r1, eff_in = deliver(machine.tick(t + 0.2))
        # Lying still, a cheap tag drops out for a moment: nothing may happen.
        machine.observe(None, t + 1.0)
        p2, r2, eff_mid = deliver(machine.observe(uid, t + 1.5))
        machine.observe(None, t + 3.0)
        p3, r3, eff_out = deliver(machine.tick(t + 4.3))
        t += 5.0
        ok = (p1, r1, p2, r2, p3, r3) == (1, 0, 0, 0, 0, 1) and not eff_mid
        if known:
            s = sum(isinstance(e, StartAction) for e in eff_in)
            x = sum(isinstance(e, StopAction) for e in eff_out)
            started += s
            stopped += x
            ok = ok and s == 1 and x == 1
        else:
            unknown += 1
            ok = (
                ok
                and not any(isinstance(e, StartAction) for e in eff_in)
                and any(isinstance(e, Record) and e.kind == "unknown_card" for e in eff_in)
            )
        ok = ok and isinstance(session.screen, Home) and session.running is None
        lost += not ok
    gc.collect()
    return dict(
        cycles=cycles,
        lost=lost,
        started=started,
        stopped=stopped,
        unknown=unknown,
        growth_kb=rss_kb() - baseline,
        rss_kb=rss_kb(),
    )


def run(quick: bool = False) -> list[tuple[str, str, str, bool]]:
    s = soak(QUICK if quick else FULL)
    growth = s["growth_kb"] / 1024
    return [
        (f"insert/remove ({s['cycles']:,} cycles): events lost", str(s["lost"]), "0", s["lost"] == 0),
        (
            "insert/remove: actions started / stopped",
            f"{s['started']:,} / {s['stopped']:,}",
            f"{s['cycles'] - s['unknown']:,} each",
            s["started"] == s["stopped"] == s["cycles"] - s["unknown"],
        ),
        ("insert/remove: RSS growth after warm-up", f"{growth:.2f} MB", "< 5 MB", growth < 5),
    ]
