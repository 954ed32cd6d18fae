"""The launcher's picture store when the card set changes under it: a decode begun before
:meth:`PictureTextures.forget` is of the old file and must not be kept.

Kivy is imported in a subprocess of its own (as every launcher test does), with the store's
uploads collected instead of run on Kivy's clock, so the test decides when they land.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as a script

REPO = Path(__file__).resolve().parent.parent


def _drive(home: Path, out: Path) -> None:
    import time

    from tests.launcher_harness import offscreen_env

    offscreen_env(home)
    from PIL import Image

    from launcher.textures import PictureTextures

    picture = home / "anna.png"
    picture.write_bytes(b"not a picture yet")  # the carer's first, broken anna.png
    landed: list = []
    textures = PictureTextures(schedule=landed.append)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(landed) < count:
            assert time.monotonic() < deadline, "the worker never finished"
            time.sleep(0.01)

    textures.request(picture, 64)
    wait_for(1)  # decoded (it failed), its result not yet on the screen's thread
    Image.new("RGB", (40, 30), (20, 90, 200)).save(picture)  # a good one replaces it ...
    textures.forget()  # ... and the card file changed with it
    landed.pop(0)()  # the old result lands after the forget
    results: dict = {"failed_after_forget": textures.failed(picture, 64), "made_again": None}
    try:
        wait_for(1)  # the picture is made again from the new file
        again = landed[0].args[1]
        results["made_again"] = [again.problem, list(again.size)]
    finally:
        out.write_text(json.dumps(results), encoding="utf-8")


def test_a_decode_begun_before_the_card_set_changed_is_not_kept(tmp_path):
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path), str(out)], capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )
    assert out.exists(), f"the run wrote no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    results = json.loads(out.read_text())
    assert results["failed_after_forget"] is False  # the new anna.png is not refused for the old one
    assert results["made_again"] == [None, [40, 30]]


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
