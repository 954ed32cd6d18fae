"""Carer tool figures: the check that runs on every keystroke once a mistake is shown, a save with
undo, and the carer PIN check the launcher does on the tablet."""

import tempfile
import time
from dataclasses import replace
from pathlib import Path

from cards.carer.model import check_form, new_form
from cards.carer.session import EditorSession
from cards.model import Card, Web
from cards.registry import Registry, save_registry
from klick.pin import ITERATIONS, check_pin, hash_pin


def _per_call(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def run():
    rows = []
    form = replace(new_form("04C0FFEE01"), kind="call", label="Mormor", server="https://meet.example.se", room="familjen")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for n in (50, 500):
            registry = Registry(tuple(Card(f"04{i:08X}", f"Kort {i}", Web(f"https://example.se/{i}")) for i in range(n)))
            s = _per_call(lambda registry=registry: check_form(form, registry, base), 10)
            rows.append((f"check one form in the whole file of {n} cards (on save)", f"{s * 1000:.1f} ms"))
        s = _per_call(lambda: check_form(form, registry, base, whole_file=False), 200)
        rows.append(("check one form alone (live, per keystroke)", f"{s * 1000:.2f} ms"))
        path = base / "cards.yaml"
        save_registry(registry, path)
        session = EditorSession(path)

        def save_and_undo():
            session.save(form)
            session.undo()

        s = _per_call(save_and_undo, 5)
        rows.append(("save + undo with 500 cards (atomic, fsync)", f"{s * 1000:.0f} ms"))
    stored = hash_pin("246813")
    s = _per_call(lambda: check_pin("246813", stored), 5)
    rows.append((f"carer PIN check (PBKDF2-SHA256, {ITERATIONS:,} rounds, off the screen's thread)", f"{s * 1000:.0f} ms"))
    return rows


if __name__ == "__main__":
    for name, value in run():
        print(f"{name}: {value}")
