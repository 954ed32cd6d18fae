"""A power cut during a save leaves the old card file or the new one, never half of one."""

import os
import signal
import subprocess
import sys
import time

from cards.registry import load_registry

WRITER = r"""
import sys
from cards.model import Card, Web
from cards.registry import Registry, save_registry
path = sys.argv[1]
n = 0
while True:
    n += 1
    cards = tuple(Card(f"04{i:06X}", f"Kort {n}-{i}", Web(f"https://example.se/{n}/{i}")) for i in range(40))
    save_registry(Registry(cards), path)
    print(n, flush=True)
"""


def test_sigkill_mid_save_always_leaves_a_loadable_registry(tmp_path):
    path = tmp_path / "cards.yaml"
    for round_ in range(25):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(__file__))
        )
        proc.stdout.readline()  # at least one save has finished
        time.sleep(0.005 * (round_ % 7))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        registry = load_registry(path)
        assert len(registry) == 40
        labels = {c.label.split("-")[0] for c in registry.cards}
        assert len(labels) == 1, "a file mixing two saves"
