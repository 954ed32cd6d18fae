"""Registry figures: load and check time, and lookup cost, for a large card set."""

import tempfile
import time
from pathlib import Path

from cards.model import Card, Web
from cards.registry import Registry, load_registry, save_registry


def run():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cards.yaml"
        cards = tuple(Card(f"04{i:08X}", f"Kort {i}", Web(f"https://example.se/{i}")) for i in range(2000))
        t0 = time.perf_counter()
        save_registry(Registry(cards), path)
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        registry = load_registry(path)
        load_s = time.perf_counter() - t0
        n = 200_000
        t0 = time.perf_counter()
        for i in range(n):
            registry.get(f"04:{i % 2000:08x}")
        lookup_us = (time.perf_counter() - t0) / n * 1e6
    return [
        ("save 2,000 cards (atomic, checked)", f"{save_s * 1000:.0f} ms"),
        ("load and check 2,000 cards", f"{load_s * 1000:.0f} ms"),
        ("lookup by UID (any spelling)", f"{lookup_us:.2f} µs"),
    ]
