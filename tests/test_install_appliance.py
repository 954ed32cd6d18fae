"""`make install-appliance` into a scratch DESTDIR: the layout, idempotence, kept edits, uninstall.

The venv step is left out here (SKIP_VENV=1) so `make test` stays fast and offline; the soak
suite (tests/soak/install_venv.py, `make soak`) builds the real venv twice into a DESTDIR.
Needs root (the installer sets owners) and systemd-sysusers (it makes the klick user).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the installer sets file owners: run as root"),
    pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="needs systemd-sysusers"),
]


def make(target: str, dest: Path, **env: str) -> subprocess.CompletedProcess:
    args = ["make", "-s", "-C", str(REPO), target, f"DESTDIR={dest}", "SKIP_VENV=1", *[f"{k}={v}" for k, v in env.items()]]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def manifest(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode, owner and content hash (or link target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = "/" + str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
        else:
            out[rel] = ("file", oct(st.st_mode & 0o7777), st.st_uid, st.st_gid, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def passwd(root: Path, name: str, table: str = "passwd") -> list[str] | None:
    for line in (root / "etc" / table).read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    return None


def test_install_lays_out_the_appliance_and_a_second_run_changes_nothing(tmp_path):
    dest = tmp_path / "root"
    first = make("install-appliance", dest)
    assert "wrote /etc/klick/klick.yaml" in first.stdout
    before = manifest(dest)

    second = make("install-appliance", dest)
    assert "Nothing changed" in second.stdout
    assert manifest(dest) == before

    user = passwd(dest, "klick")
    assert user is not None and user[5] == "/var/lib/klick" and user[6] == "/usr/sbin/nologin"
    uid, gid = int(user[2]), int(user[3])
    members = {g: passwd(dest, g, "group")[3].split(",") for g in ("dialout", "plugdev", "input")}
    assert all("klick" in m for m in members.values())

    data = (dest / "var/lib/klick").stat()
    assert (data.st_mode & 0o777, data.st_uid, data.st_gid) == (0o750, uid, gid)
    settings = (dest / "etc/klick/klick.yaml").stat()
    assert (settings.st_mode & 0o777, settings.st_uid, settings.st_gid) == (0o640, 0, gid)
    # The questionnaire is in the data folder, the klick user's own, so the fleet may replace it.
    questions = (dest / "var/lib/klick/questionnaire.yaml").stat()
    assert (questions.st_mode & 0o777, questions.st_uid, questions.st_gid) == (0o640, uid, gid)
    assert (dest / "var/lib/klick/questionnaire.yaml").read_bytes() == (REPO / "config/questionnaire.yaml").read_bytes()
    assert not (dest / "etc/klick/questionnaire.yaml").exists()
    for path in (
        "etc/systemd/system/klick-bridge.service",
        "etc/systemd/system/klick-launcher.service",
        "etc/systemd/system/klick-retry@.timer",
        "etc/udev/rules.d/99-klick.rules",
        "etc/pam.d/klick-kiosk",
        "etc/modprobe.d/klick-nfc.conf",
        "etc/chromium/policies/managed/klick.json",
        "opt/klick/share/firmware/main.py",
        "opt/klick/share/README.md",
    ):
        assert (dest / path).is_file(), path
    assert not (dest / "opt/klick/venv").exists()  # SKIP_VENV=1
    wants = dest / "etc/systemd/system/multi-user.target.wants"
    assert os.readlink(wants / "klick-bridge.service") == "/etc/systemd/system/klick-bridge.service"
    assert (wants / "klick-launcher.service").is_symlink()
    assert (dest / "etc/systemd/system/timers.target.wants/klick-retry@klick-bridge.timer").is_symlink()

    from klick.config import load_config

    cfg = load_config(dest / "etc/klick/klick.yaml")
    assert str(cfg.paths.socket) == "/run/klick/bridge.sock"
    assert str(cfg.paths.registry) == "/var/lib/klick/cards.yaml"
    assert str(cfg.paths.usage_db) == "/var/lib/klick/usage.db"
    assert str(cfg.paths.questionnaire) == "/var/lib/klick/questionnaire.yaml"
    assert (cfg.reader.driver, cfg.reader.device) == ("serial", "/dev/klick-reader")


def test_an_edited_setting_is_kept_and_an_untouched_old_default_is_updated(tmp_path):
    dest = tmp_path / "root"
    make("install-appliance", dest)
    settings = dest / "etc/klick/klick.yaml"
    edited = settings.read_text().replace("locale: sv", "locale: en")
    settings.write_text(edited)
    out = make("install-appliance", dest).stdout
    assert "kept your edited /etc/klick/klick.yaml" in out
    assert settings.read_text() == edited
    assert (dest / "etc/klick/klick.yaml.new").read_bytes() == (REPO / "config/appliance/klick.yaml").read_bytes()
    stable = manifest(dest)
    assert "Nothing changed" in make("install-appliance", dest).stdout
    assert manifest(dest) == stable

    # An older shipped default nobody edited is simply replaced by the new one.
    questions = dest / "var/lib/klick/questionnaire.yaml"
    old = "# last year's default\n" + questions.read_text()
    questions.write_text(old)
    (dest / "opt/klick/share/defaults/questionnaire.yaml").write_text(old)
    make("install-appliance", dest)
    assert questions.read_bytes() == (REPO / "config/questionnaire.yaml").read_bytes()
    assert not (dest / "var/lib/klick/questionnaire.yaml.new").exists()


def test_uninstall_keeps_settings_and_data_unless_purged(tmp_path):
    dest = tmp_path / "root"
    make("install-appliance", dest)
    (dest / "var/lib/klick/cards.yaml").write_text("cards: []\n")
    out = make("uninstall-appliance", dest).stdout
    assert "Kept /etc/klick /var/lib/klick" in out
    assert not (dest / "opt/klick").exists()
    assert not (dest / "etc/systemd/system/klick-bridge.service").exists()
    assert not (dest / "etc/systemd/system/multi-user.target.wants/klick-bridge.service").exists()
    assert not (dest / "etc/udev/rules.d/99-klick.rules").exists()
    assert not (dest / "etc/chromium/policies/managed/klick.json").exists()
    assert (dest / "var/lib/klick/cards.yaml").read_text() == "cards: []\n"
    assert (dest / "etc/klick/klick.yaml").is_file()
    assert passwd(dest, "klick") is not None

    make("uninstall-appliance", dest, PURGE="1")
    assert not (dest / "var/lib/klick").exists() and not (dest / "etc/klick").exists()
    assert passwd(dest, "klick") is None and passwd(dest, "klick", "group") is None


def test_install_says_which_kiosk_packages_the_appliance_needs(tmp_path):
    out = make("install-appliance", tmp_path / "root").stdout
    lines = {line.strip().split(":")[0]: line.split(":", 1)[1].split() for line in out.splitlines() if ":" in line}
    # XWayland above all: cage does not pull it in, and without it the launcher's window never shows.
    assert lines["kiosk packages"] == ["cage", "xwayland", "chromium"]
    assert "python3-venv" in lines["run-time packages"]
    assert "alsa-utils" in lines["run-time packages"]  # aplay: the chime when someone is waiting
    assert "not installed into an image: the image needs them (apt-get install cage xwayland chromium" in out
    unit = (tmp_path / "root/etc/systemd/system/klick-launcher.service").read_text()
    assert "ExecStart=/usr/bin/cage -d -- /opt/klick/venv/bin/klick launcher" in unit


def _as_user(uid: int, gid: int):
    """Run a block with the klick user's rights on files (effective ids only, restored after)."""
    import contextlib

    @contextlib.contextmanager
    def block():
        groups = os.getgroups()
        os.setgroups([gid])
        os.setegid(gid)
        os.seteuid(uid)
        try:
            yield
        finally:
            os.seteuid(0)
            os.setegid(0)
            os.setgroups(groups)

    return block()


def test_the_fleet_as_the_klick_user_swaps_the_installed_questionnaire_and_a_reinstall_keeps_it():
    """Before, the appliance's questionnaire was /etc/klick/questionnaire.yaml and every push was refused."""
    import tempfile

    from fleet import envelope
    from fleet.apply import Applier, ApplySettings
    from fleet.device import _pushable
    from fleet.signing import new_key_pair, public_text
    from klick.config import load_config

    # Not under pytest's own temporary folder: that is root's alone, and the klick user must reach the image.
    with tempfile.TemporaryDirectory(prefix="klick-install-") as tmp:
        os.chmod(tmp, 0o755)
        dest = Path(tmp) / "root"
        make("install-appliance", dest)
        user = passwd(dest, "klick")
        assert user is not None
        uid, gid = int(user[2]), int(user[3])
        cfg = load_config(dest / "etc/klick/klick.yaml")
        target = _pushable(Path(cfg.paths.questionnaire))
        assert target == Path("/var/lib/klick/questionnaire.yaml")

        key = new_key_pair()
        pushed = (REPO / "config/questionnaire.yaml").read_bytes() + b"\n# pushed by the office\n"
        push = envelope.seal(key, "questionnaire", "hbg-01", 5, pushed, name="q.yaml", at="2026-03-05T12:00:00.000Z")
        home = dest / "var/lib/klick"

        def tablet(questionnaire: Path) -> Applier:
            return Applier(ApplySettings("hbg-01", home, home / "cards.yaml", questionnaire, (), public_text(key)))

        with _as_user(uid, gid):
            # Where it was before, the klick user cannot write it: the push is refused.
            refused = tablet(dest / "etc/klick/questionnaire.yaml").receive("questionnaire", push)
            (home / "fleet-applied.json").unlink()
            outcome = tablet(dest / str(target).lstrip("/")).receive("questionnaire", push)
        assert refused is not None and not refused.ok and "could not be written" in refused.problems[0]
        assert outcome is not None and outcome.ok, outcome
        assert (home / "questionnaire.yaml").read_bytes() == pushed

        out = make("install-appliance", dest).stdout
        assert "kept your edited /var/lib/klick/questionnaire.yaml" in out
        assert (home / "questionnaire.yaml").read_bytes() == pushed
        assert (home / "questionnaire.yaml.new").read_bytes() == (REPO / "config/questionnaire.yaml").read_bytes()


def _old_layout(dest: Path, questions: str | None, *, settings_edited: bool = False) -> None:
    """Make a fresh install look like one from before: the questionnaire in /etc/klick."""
    new_settings = (REPO / "config/appliance/klick.yaml").read_text()
    old_settings = new_settings.replace(
        "questionnaire: /var/lib/klick/questionnaire.yaml", "questionnaire: /etc/klick/questionnaire.yaml"
    )
    assert old_settings != new_settings
    (dest / "opt/klick/share/defaults/klick.yaml").write_text(old_settings)
    (dest / "etc/klick/klick.yaml").write_text(
        old_settings.replace("locale: sv", "locale: en") if settings_edited else old_settings
    )
    (dest / "var/lib/klick/questionnaire.yaml").unlink()
    shipped = (REPO / "config/questionnaire.yaml").read_text()
    (dest / "etc/klick/questionnaire.yaml").write_text(shipped if questions is None else questions)


def test_an_older_install_moves_an_edited_questionnaire_into_the_data_folder(tmp_path):
    dest = tmp_path / "root"
    make("install-appliance", dest)
    edited = (REPO / "config/questionnaire.yaml").read_text().replace("per_day: 3", "per_day: 2")
    _old_layout(dest, edited)
    out = make("install-appliance", dest).stdout
    assert "your edited questionnaire moved to /var/lib/klick/questionnaire.yaml" in out
    assert (dest / "var/lib/klick/questionnaire.yaml").read_text() == edited
    assert not (dest / "etc/klick/questionnaire.yaml").exists()  # its edits live on in the data folder
    assert "questionnaire: /var/lib/klick/questionnaire.yaml" in (dest / "etc/klick/klick.yaml").read_text()
    stable = manifest(dest)
    assert "Nothing changed" in make("install-appliance", dest).stdout
    assert manifest(dest) == stable


def test_an_older_untouched_questionnaire_is_replaced_and_its_old_place_removed(tmp_path):
    dest = tmp_path / "root"
    make("install-appliance", dest)
    _old_layout(dest, None)
    fresh = tmp_path / "fresh"
    make("install-appliance", fresh)
    make("install-appliance", dest)
    assert manifest(dest) == manifest(fresh)


def test_settings_still_naming_the_old_questionnaire_keep_it_where_they_read_it(tmp_path):
    dest = tmp_path / "root"
    make("install-appliance", dest)
    _old_layout(dest, None, settings_edited=True)
    out = make("install-appliance", dest).stdout
    assert "kept your edited /etc/klick/klick.yaml" in out
    # Their klick.yaml reads /etc/klick/questionnaire.yaml: it stays, as it is.
    assert (dest / "etc/klick/questionnaire.yaml").read_bytes() == (REPO / "config/questionnaire.yaml").read_bytes()
    assert "questionnaire: /var/lib/klick/questionnaire.yaml" in (dest / "etc/klick/klick.yaml.new").read_text()
    assert (dest / "var/lib/klick/questionnaire.yaml").is_file()  # ready for when they take the new settings
