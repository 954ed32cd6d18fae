"""The carer's tools: printing faces, packing and unpacking a card set with a real photo album,
and one `klick doctor` run. Unpack includes every check (names, sizes, card file, each photo)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PHOTOS = 60


def run() -> list[tuple[str, str]]:
    from PIL import Image

    from cards.bundle import pack_bundle, unpack_bundle
    from cards.printing import render_cards
    from cards.registry import load_registry, save_registry
    from klick.cli.doctor_checks import Machine, run_doctor

    rows: list[tuple[str, str]] = []
    demo = load_registry(ROOT / "config" / "demo-cards.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cards = [replace(demo.cards[i % 5], uid=f"0A{i:06X}", label=f"{demo.cards[i % 5].label} {i}") for i in range(40)]
        t0 = time.perf_counter()
        result = render_cards(cards, tmp / "cards.pdf", backs=True)
        rows.append(
            (
                "print 40 faces + backs",
                f"{(time.perf_counter() - t0) * 1000:.0f} ms, {result.pages} pages, "
                f"{(tmp / 'cards.pdf').stat().st_size // 1024} kB",
            )
        )

        album = tmp / "set" / "album"
        album.mkdir(parents=True)
        for n in range(PHOTOS):
            Image.effect_noise((1600, 1200), 40 + n % 30).convert("RGB").save(album / f"foto-{n:03}.jpg", quality=85)
        shutil.copytree(ROOT / "config" / "demo", tmp / "set" / "demo")
        text = (ROOT / "config" / "demo-cards.yaml").read_text().replace("folder: demo/album", "folder: album")
        (tmp / "set" / "cards.yaml").write_text(text)
        registry = load_registry(tmp / "set" / "cards.yaml")
        album_mb = sum(p.stat().st_size for p in album.iterdir()) / 1024 / 1024
        t0 = time.perf_counter()
        packed = pack_bundle(registry, tmp / "set" / "cards.yaml", tmp / "mamma.klick")
        rows.append(
            (
                f"pack 5 cards + {PHOTOS}-photo album ({album_mb:.0f} MB)",
                f"{time.perf_counter() - t0:.2f} s, bundle {packed.bytes / 1024 / 1024:.1f} MB",
            )
        )
        device = tmp / "device"
        device.mkdir()
        save_registry(demo, device / "cards.yaml")
        t0 = time.perf_counter()
        unpack_bundle(tmp / "mamma.klick", device / "cards.yaml", allowed_servers=["https://meet.jit.si"])  # the demo's call
        rows.append(("unpack it, every check included", f"{time.perf_counter() - t0:.2f} s"))

        home = tmp / "home"
        home.mkdir()
        (home / "klick.yaml").write_text(f'browser: {{command: ["true"]}}\npaths: {{registry: {device / "cards.yaml"}}}\n')
        old = os.environ.get("KLICK_HOME")
        os.environ["KLICK_HOME"] = str(home)
        try:
            t0 = time.perf_counter()
            run_doctor(machine=Machine.current())
            rows.append(("klick doctor, all checks (no bridge running)", f"{(time.perf_counter() - t0) * 1000:.0f} ms"))
        finally:
            if old is None:
                os.environ.pop("KLICK_HOME", None)
            else:
                os.environ["KLICK_HOME"] = old
    return rows


if __name__ == "__main__":
    for name, value in run():
        print(f"{name:50} {value}")
