"""The carer's tools: printing faces, packing and unpacking a card set with a real photo album,
and one `klick doctor` run. Unpack includes every check (names, sizes, card file, each photo).
Also the text-fitting rule with the printed card's real font widths, and the picture chooser's
thumbnails of camera-sized photos, made fresh and then read back from the cache."""

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
    from cards.carer.pictures import make_thumb
    from cards.fitting import fit_text
    from cards.printing import FONT_BOLD, _register_fonts, render_cards
    from cards.registry import load_registry, save_registry
    from klick.cli.doctor_checks import Machine, run_doctor

    rows: list[tuple[str, str]] = []
    from reportlab.pdfbase.pdfmetrics import stringWidth

    _register_fonts()
    labels = ["Anna", "Barnbarnen", "Kunskapskanalen", "Morfar Karl-Gustaf Andersson", "Morfar Karl-Gustaf Andersson på Ängsgård"]
    times = []
    for n in range(400):
        label = labels[n % len(labels)] + ("" if n < 5 else f" {n}")
        t0 = time.perf_counter()
        # A fresh measure each time, as a new label meets an empty cache.
        fit_text(label, 500, 300, lambda t, s: stringWidth(t, FONT_BOLD, s), max_size=104, min_size=40, line_height=1.2)
        times.append(time.perf_counter() - t0)
    times.sort()
    rows.append(
        (
            "fit a label (104 to 40 px, real font widths)",
            f"p50 {times[len(times) // 2] * 1000:.2f} ms, p99 {times[int(len(times) * 0.99)] * 1000:.2f} ms",
        )
    )
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

        cache = tmp / "thumbs"
        photos = sorted(album.iterdir())[:30]
        t0 = time.perf_counter()
        for photo in photos:
            make_thumb(photo, cache)
        fresh = (time.perf_counter() - t0) / len(photos)
        t0 = time.perf_counter()
        for photo in photos:
            make_thumb(photo, cache)
        cached = (time.perf_counter() - t0) / len(photos)
        rows.append(
            (
                "chooser thumbnail of a 1600x1200 JPEG",
                f"made {fresh * 1000:.1f} ms, from the cache {cached * 1000:.1f} ms (worker thread)",
            )
        )

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
