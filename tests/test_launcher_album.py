"""The photo album in the real launcher, headless, on a folder as phones and carers fill it.

A phone's portrait stored sideways with an EXIF note, a WebP picture, a PNG whose header claims
more pixels than Klick opens, and a plain PNG. The album card goes in; the album is stepped
through every picture (the fade made short). What each shown picture was is written to a JSON
file the tests below read. Like tests/test_launcher_ui.py, this file starts itself as a script
(one Kivy app per process).
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # when run as the launcher's script

from tests.launcher_harness import offscreen_env, run_as_script, run_scenario, start_bridge, stop_bridge  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ALBUM = "04D3E4F5061728"
BROKEN = "04D3E4F5061729"  # an album whose every picture is damaged or too big
PORTRAIT, WEBP, HUGE, PLAIN = "2026-09-portratt.jpg", "2026-08-sommar.webp", "2026-07-jatte.png", "2026-01-snogubbe.png"

pytestmark = pytest.mark.ui


def _huge_png(path: Path) -> None:
    """A small PNG whose header says 20000 x 20000 pixels: Klick must not even try it."""
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8  # after the signature: length, b"IHDR", width, height, ...
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", 20_000, 20_000)
    body = bytes(data[ihdr + 4 : ihdr + 8 + 13])
    data[ihdr + 8 + 13 : ihdr + 8 + 17] = struct.pack(">I", zlib.crc32(body))
    path.write_bytes(bytes(data))


def write_home(home: Path) -> None:
    from PIL import Image

    folder = home / "album"
    folder.mkdir()
    sideways = Image.new("RGB", (300, 200), (40, 120, 200))  # stored lying down ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the note "turn me a quarter clockwise": upright it is 200 x 300
    sideways.save(folder / PORTRAIT, exif=exif.tobytes())
    Image.new("RGB", (240, 160), (30, 160, 60)).save(folder / WEBP)
    _huge_png(folder / HUGE)
    Image.new("RGB", (160, 120), (230, 230, 230)).save(folder / PLAIN)
    broken = home / "trasigt"
    broken.mkdir()
    (broken / "2026-05-kaputt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a photo after all")
    _huge_png(broken / HUGE)
    (home / "cards.yaml").write_text(
        f'version: 1\ncards:\n  - uid: "{ALBUM}"\n    label: Barnbarnen\n    colour: purple\n'
        f"    action:\n      type: photo_album\n      folder: {folder}\n"
        f'  - uid: "{BROKEN}"\n    label: Resan\n    colour: green\n'
        f"    action:\n      type: photo_album\n      folder: {broken}\n",
        encoding="utf-8",
    )
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    (home / "klick.yaml").write_text(
        f"reader:\n  driver: sim\n  grace_ms: 0\nlocale: sv\n"
        f"browser:\n  command: {json.dumps(sleeper)}\npaths:\n  socket: {home / 'b.sock'}\n",
        encoding="utf-8",
    )


def _drive(home: Path, out: Path) -> None:
    offscreen_env(home)
    from klick.config import load_config
    from launcher.kivy_setup import configure_kivy

    cfg = load_config(home / "klick.yaml")
    bridge = start_bridge(home)
    configure_kivy(cfg, offscreen=True)

    from launcher import session as S
    from launcher.app import LauncherApp
    from launcher.screens import album as album_module
    from launcher.textures import picture_textures

    album_module.FADE_SECONDS = 0.05
    results: dict = {"steps": [], "errors": [], "shown": []}

    def scenario(app: LauncherApp):
        session = app.session
        yield lambda: isinstance(session.screen, S.Home) and session.reader_ready
        app.send_to_bridge({"command": "insert", "uid": ALBUM})
        album = app.screens["album"]
        yield lambda: app.album_card is not None and album.front.texture is not None
        results["pictures"] = [Path(p).name for p in album.pictures]

        def seen() -> None:
            path = album.pictures[album.index]
            texture = album.front.texture
            px = getattr(album, "picture_px", 0)
            results["shown"].append(
                {
                    "name": Path(path).name,
                    "size": list(texture.size),
                    "made_beside_the_screen": px > 0 and texture is picture_textures.texture(path, px),
                }
            )

        seen()
        for _ in range(3):
            before = album.front
            album._next()
            yield lambda before=before: album.front is not before  # the fade ended: the new one is in front
            seen()
        results["steps"].append("album")
        app.send_to_bridge({"command": "remove"})
        yield lambda: isinstance(session.screen, S.Home)
        results["running_after_removal"] = album.running
        app.send_to_bridge({"command": "insert", "uid": BROKEN})
        yield lambda: isinstance(session.screen, S.ActionFailed)
        results["broken_album"] = [session.screen.reason, album.running, app.album_card is None]
        app.send_to_bridge({"command": "remove"})
        yield lambda: isinstance(session.screen, S.Home)

    def probe(app: LauncherApp) -> None:
        run_scenario(app, scenario(app), results, out, timeout=30)

    try:
        LauncherApp(cfg, probe=probe).run()
    finally:
        stop_bridge(bridge)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("home")
    write_home(home)
    return run_as_script(__file__, home, timeout=90)


def test_the_album_scenario_ran_to_its_end(run):
    assert run["errors"] == [] and run["steps"] == ["album"]
    assert run["running_after_removal"] is False


def test_album_pictures_are_made_beside_the_screen_and_a_phone_portrait_stands_upright(run):
    shown = run["shown"]
    assert all(s["made_beside_the_screen"] for s in shown), shown
    portrait = [s for s in shown if s["name"] == PORTRAIT]
    assert portrait and all(s["size"] == [200, 300] for s in portrait), shown


def test_album_passes_over_a_picture_with_too_many_pixels(run):
    names = [s["name"] for s in run["shown"]]
    assert HUGE not in names
    assert PLAIN in names and names[0] == PORTRAIT


def test_an_album_whose_every_picture_is_damaged_says_there_are_no_pictures_not_a_dark_screen(run):
    assert run["broken_album"] == ["no_pictures", False, True]


def test_album_shows_webp_pictures(run):
    assert WEBP in run["pictures"]
    assert WEBP in [s["name"] for s in run["shown"]]


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
