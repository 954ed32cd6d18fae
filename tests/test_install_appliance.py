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
    for path in (
        "etc/klick/questionnaire.yaml",
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
    questions = dest / "etc/klick/questionnaire.yaml"
    old = "# last year's default\n" + questions.read_text()
    questions.write_text(old)
    (dest / "opt/klick/share/defaults/questionnaire.yaml").write_text(old)
    make("install-appliance", dest)
    assert questions.read_bytes() == (REPO / "config/questionnaire.yaml").read_bytes()
    assert not (dest / "etc/klick/questionnaire.yaml.new").exists()


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
    assert "not installed into an image: the image needs them (apt-get install cage xwayland chromium" in out
    unit = (tmp_path / "root/etc/systemd/system/klick-launcher.service").read_text()
    assert "ExecStart=/usr/bin/cage -d -- /opt/klick/venv/bin/klick launcher" in unit
